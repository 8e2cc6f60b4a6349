"""DSMR P1 telegrams through dsmr-parser: every telegram specification it ships (DSMR 2.2 to 5,
Belgian Fluvius, Luxembourg Smarty and its full MSN table, Swedish, EasyMeter Q3D, Sagemcom
T210-D / Austria, Irish Iskra, E.ON Hungary), detected from the telegram or forced per device.

Detection: the Belgian version line 0-0:96.1.4; the logical device name 0-0:42.0.0 (E.ON Hungary
when the telegram also carries the serial 0-0:96.1.0 or the combined register 1-0:15.8.0,
Luxembourg otherwise); Irish Iskra's serial in 0-0:96.1.0 without a 0-0:96.1.1 value; EasyMeter
Q3D's 1-0:0.0.0 / 0-0:96.1.255; the P1 version 1-3:0.2.8 (42 = 4.2, 50 = 5.0; Sagemcom T210-D when
the telegram has no identity line); a CRC without any version or identity line is Swedish; no CRC
and no version line is DSMR 2.2/3.

Identity: the spec's identity register (0-0:96.1.1, 0-0:42.0.0, 0-0:96.1.0, 1-0:0.0.0, ...).
Swedish and Sagemcom T210-D telegrams carry none (nor does any telegram whose identity line is
empty): the frame is decoded with identity "" and the identity must come from the device
configuration (drivers.FrameDecoder(identity=...)); the pipeline refuses a frame without one.
"""
from __future__ import annotations

import logging
import re
from decimal import Decimal

from dsmr_parser import telegram_specifications as specs
from dsmr_parser.exceptions import InvalidChecksumError, ParseError
from dsmr_parser.parsers import TelegramParser

from meter_oracle.errors import FrameRefused
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame


def _plain(spec: dict) -> dict:
    """The spec of the decrypted telegram text (the cipher layer is p1_cipher's)."""
    return {**spec, "general_global_cipher": False}


SPECS = {
    "2.2": specs.V2_2,
    "3": specs.V3,
    "4": specs.V4,
    "5": specs.V5,
    "belgium": specs.BELGIUM_FLUVIUS,
    "luxembourg": specs.LUXEMBOURG_SMARTY,
    "luxembourg-msn": _plain(specs.MSN),
    "sweden": specs.SWEDEN,
    "q3d": specs.Q3D,
    "sagemcom-t210-d": _plain(specs.SAGEMCOM_T210_D_R),
    "austria-energienetze-steiermark": _plain(specs.AUSTRIA_ENERGIENETZE_STEIERMARK),
    "iskra-ie": specs.ISKRA_IE,
    "eon-hungary": specs.EON_HUNGARY,
}
VERSIONS = SPECS  # the former name, kept for callers that list the choices
# dsmr-parser logs a traceback for every line it skips; the oracle reports its own reasons.
logging.getLogger("dsmr_parser").setLevel(logging.CRITICAL)
_PARSERS = {name: TelegramParser(spec, apply_checksum_validation=True) for name, spec in SPECS.items()}

# Which register names the meter, per spec, first present wins.
_IDENTITY = {
    "belgium": ("BELGIUM_EQUIPMENT_IDENTIFIER",),
    "luxembourg": ("LUXEMBOURG_EQUIPMENT_IDENTIFIER", "EQUIPMENT_IDENTIFIER"),
    "luxembourg-msn": ("LUXEMBOURG_EQUIPMENT_IDENTIFIER", "EQUIPMENT_IDENTIFIER"),
    "eon-hungary": ("COSEM_LOGICAL_DEVICE_NAME", "EQUIPMENT_SERIAL_NUMBER"),
    "iskra-ie": ("EQUIPMENT_IDENTIFIER_GAS", "EQUIPMENT_IDENTIFIER"),  # 0-0:96.1.0 is the serial there
    "q3d": ("Q3D_EQUIPMENT_IDENTIFIER", "Q3D_EQUIPMENT_SERIALNUMBER"),
    "sweden": (),
    "sagemcom-t210-d": (),
    "austria-energienetze-steiermark": (),
}
_DEFAULT_IDENTITY = ("EQUIPMENT_IDENTIFIER",)

# Serial line settings per spec (DSMR 2.2/3 and the Q3D D0 interface: 9600 7E1; the rest 115200 8N1).
_SLOW = {"baudrate": 9600, "bytesize": 7, "parity": "E", "stopbits": 1}
_FAST = {"baudrate": 115200, "bytesize": 8, "parity": "N", "stopbits": 1}
SERIAL = {name: dict(_SLOW if name in ("2.2", "3", "q3d") else _FAST) for name in SPECS}

_P1_VERSION = re.compile(rb"^\d-\d:0\.2\.8\((\d+)\)", re.MULTILINE)
_CRC_TRAILER = re.compile(rb"^!([0-9A-Fa-f]{4})\r?\n?$", re.MULTILINE)
_HAS_VALUE = r"(?!\))"  # after the opening parenthesis: not empty
_IDENTITY_LINE = re.compile(rb"^[01]-0:(96\.1\.[014]|42\.0\.0|0\.0\.0)[*(]", re.MULTILINE)
_IMPORT_TARIFFS = [f"ELECTRICITY_USED_TARIFF_{i}" for i in (1, 2, 3, 4)]
_EXPORT_TARIFFS = [f"ELECTRICITY_DELIVERED_TARIFF_{i}" for i in (1, 2, 3, 4)]
_WH_PER_UNIT = {"kWh": Decimal(1000), "Wh": Decimal(1)}
_W_PER_UNIT = {"kW": Decimal(1000), "W": Decimal(1)}
MAX_TELEGRAM = 16 * 1024  # a P1 telegram is a few kB; more without an end is noise
NO_IDENTITY = "the telegram carries no meter identity: set the device's identity in the configuration"


def _has(raw: bytes, pattern: str) -> bool:
    return re.search(pattern.encode(), raw, re.MULTILINE) is not None


def detect_version(raw: bytes) -> str:
    """The dsmr-parser telegram specification a telegram follows (see the module docstring)."""
    if _has(raw, r"^0-0:96\.1\.4\("):
        return "belgium"
    if _has(raw, r"^0-0:42\.0\.0\("):
        return "eon-hungary" if _has(raw, r"^0-0:96\.1\.0\(" + _HAS_VALUE) or _has(raw, r"^1-0:15\.8\.0\(") \
            else "luxembourg"
    if _has(raw, r"^0-0:96\.1\.0\(" + _HAS_VALUE) and not _has(raw, r"^0-0:96\.1\.1\(" + _HAS_VALUE):
        return "iskra-ie"
    if _has(raw, r"^1-0:0\.0\.0[*(]") or _has(raw, r"^0-0:96\.1\.255[*(]"):
        return "q3d"
    has_identity = _IDENTITY_LINE.search(raw) is not None
    m = _P1_VERSION.search(raw)
    if m:
        if not has_identity:
            return "sagemcom-t210-d"
        return "5" if int(m.group(1)) >= 50 else "4"
    if _CRC_TRAILER.search(raw):
        return "4" if has_identity else "sweden"
    return "2.2"


def parse_telegram(raw: bytes, version: str | None = None) -> MeterFrame:
    """Decode one telegram (bytes from '/' to the line end after '!CRC'); FrameRefused if invalid.
    A telegram without an identity register is decoded with identity "" (see NO_IDENTITY)."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise FrameRefused(f"not an ASCII telegram: byte 0x{raw[e.start]:02x} at offset {e.start}") from None
    if not text.startswith("/") or "!" not in text:
        raise FrameRefused("not a telegram: it must run from '/' to '!'")
    if not text.endswith("\n"):
        text += "\r\n"  # a stream may end right after the CRC; dsmr-parser wants a line end
    version = version or detect_version(raw)
    if version not in SPECS:
        raise FrameRefused(f"unknown DSMR telegram specification {version!r}; known: {', '.join(SPECS)}")
    try:
        if _CRC_TRAILER.search(raw) and not SPECS[version]["checksum_support"]:
            TelegramParser.validate_checksum(text)  # Iskra IE sends a CRC its spec does not check
        # An odd line (a text message with '/', a vendor register) is skipped by dsmr-parser;
        # the lines a reading is made of must all have parsed (_check_registers).
        telegram = _PARSERS[version].parse(text, throw_ex=False)
    except InvalidChecksumError as e:
        raise FrameRefused(f"CRC mismatch (DSMR {version}): {_crc_detail(e)}") from None
    except ParseError as e:
        raise FrameRefused(f"malformed DSMR {version} telegram: {_format(e)}") from None
    except Exception as e:  # dsmr-parser raises bare errors on some corrupt lines
        raise FrameRefused(f"malformed DSMR {version} telegram: {type(e).__name__}: {e}") from None

    _check_registers(telegram, text, version)
    identity = _identity(telegram, version)
    import_wh = _energy(telegram, "ELECTRICITY_IMPORTED_TOTAL", _IMPORT_TARIFFS, "1.8")
    export_wh = _energy(telegram, "ELECTRICITY_EXPORTED_TOTAL", _EXPORT_TARIFFS, "2.8", optional=True)
    stamp = getattr(telegram, "P1_MESSAGE_TIMESTAMP", None)
    return MeterFrame(
        protocol="dsmr",
        identity=identity,
        import_wh=import_wh,
        export_wh=export_wh,
        raw_frame=raw,
        meter_time=stamp.value.timestamp() if stamp is not None and stamp.value is not None else None,
        power_w=_power(telegram),
        detail=f"DSMR {version}" + ("" if identity else f"; {NO_IDENTITY}"),
    )


def _identity(telegram, version: str) -> str:
    for name in _IDENTITY.get(version, _DEFAULT_IDENTITY):
        obj = getattr(telegram, name, None)
        if obj is not None and obj.value:
            return str(obj.value)
    return ""  # a valid telegram all the same: the identity comes from the configuration


_READING_REGISTERS = {"ELECTRICITY_IMPORTED_TOTAL", "ELECTRICITY_EXPORTED_TOTAL", *_IMPORT_TARIFFS, *_EXPORT_TARIFFS,
                      "P1_MESSAGE_TIMESTAMP", *{n for names in _IDENTITY.values() for n in names}, *_DEFAULT_IDENTITY}


def _check_registers(telegram, text: str, version: str) -> None:
    """Every energy, clock and identity line the telegram carries was read: a malformed one is
    refused by name rather than skipped (skipping a tariff line would understate the sum)."""
    parser = _PARSERS[version]
    for obj in parser.telegram_specification["objects"]:
        if obj["value_name"] not in _READING_REGISTERS or hasattr(telegram, obj["value_name"]):
            continue
        line = parser.telegram_specification_regexes[obj["obis_reference"]].search(text)
        if line is not None:
            raise FrameRefused(f"malformed DSMR {version} telegram: cannot read the line {line.group(0).strip()!r}")


def _crc_detail(e: InvalidChecksumError) -> str:
    numbers = re.findall(r"'(\d+)'", str(e))
    if len(numbers) != 2:
        return str(e)
    computed, sent = (int(n) for n in numbers)
    return f"telegram says {sent:04X}, computed {computed:04X}"


def _format(e: ParseError) -> str:
    # dsmr-parser builds ParseError with printf-style args it never applies, one of them its
    # parser object (a repr with a memory address): keep the stable text and the line only
    if len(e.args) > 1 and isinstance(e.args[0], str):
        lines = [a.strip() for a in e.args[1:] if isinstance(a, str)]
        return e.args[0].split(" for ")[0].replace("'%s'", repr(lines[0]) if lines else "").strip()
    return str(e)


def _wh(obj, name: str) -> Decimal:
    if obj.value is None:
        raise FrameRefused(f"register {name} is empty")
    factor = _WH_PER_UNIT.get(obj.unit)
    if factor is None:
        raise FrameRefused(f"register {name} has unit {obj.unit!r}, expected kWh or Wh")
    return obj.value * factor


def _energy(telegram, total: str, tariffs: list[str], obis: str, optional: bool = False) -> Decimal:
    """The total register where the meter sends one, otherwise the sum of its tariff registers.
    A meter without any export register (Q3D import-only) exports nothing."""
    obj = getattr(telegram, total, None)
    if obj is not None:
        return _wh(obj, f"{obis}.0")
    found = [(name, getattr(telegram, name)) for name in tariffs if hasattr(telegram, name)]
    if not found:
        if optional:
            return Decimal(0)
        raise FrameRefused(f"telegram has no energy register {obis}.0 nor tariff registers {obis}.1..4")
    return sum((_wh(obj, f"{obis}.{name[-1]}") for name, obj in found), Decimal(0))


def _power(telegram) -> Decimal | None:
    use = getattr(telegram, "CURRENT_ELECTRICITY_USAGE", None)
    back = getattr(telegram, "CURRENT_ELECTRICITY_DELIVERY", None)
    if use is None or use.value is None or use.unit not in _W_PER_UNIT:
        return None
    watts = use.value * _W_PER_UNIT[use.unit]
    if back is not None and back.value is not None and back.unit in _W_PER_UNIT:
        watts -= back.value * _W_PER_UNIT[back.unit]
    return watts


# A telegram starts with its identification line '/XXXZ' (manufacturer id, baud character): a
# '/' elsewhere, such as in a text message 0-0:96.13.0, is data. It ends with '!' at a line start.
_START = re.compile(rb"/[A-Za-z]{3}[0-9]")
_END = re.compile(rb"(?:^|\n)!")


class TelegramFramer:
    """Cuts a P1 byte stream into telegrams, resynchronising on the next telegram start after any damage."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._noise = bytearray()

    def _start(self, pos: int) -> int:
        m = _START.search(self._buf, pos)
        return -1 if m is None else m.start()

    def feed(self, data: bytes) -> list[bytes | Dropped]:
        self._buf += data
        out: list[bytes | Dropped] = []
        while self._buf:
            start = self._start(0)
            if start == -1:
                keep = min(len(self._buf), 4)  # a start may be split across reads
                self._drop_noise(len(self._buf) - keep, out)
                if len(self._buf) <= 4:
                    break
                continue
            self._drop_noise(start, out)
            nxt = self._start(1)
            m = _END.search(self._buf, 1)
            bang = -1 if m is None else m.end() - 1
            if bang == -1 or (nxt != -1 and nxt < bang):
                if nxt != -1:
                    out.append(Dropped("telegram truncated: a new telegram began before its end '!'", bytes(self._buf[:nxt])))
                    del self._buf[:nxt]
                    continue
                if len(self._buf) > MAX_TELEGRAM:
                    out.append(Dropped(f"no telegram end '!' within {MAX_TELEGRAM} bytes", bytes(self._buf)))
                    self._buf.clear()
                break
            eol = self._buf.find(b"\n", bang)
            end = None
            if nxt != -1 and (eol == -1 or nxt <= eol):
                end = nxt  # the next telegram begins inside this one's CRC line
            elif eol != -1 and eol - bang <= 7:
                end = eol + 1
            elif eol != -1 or len(self._buf) - bang > 7:
                end = bang + 5  # no line end where the CRC line should end; let the parser judge
            if end is None:
                break  # the CRC line is still arriving
            out.append(bytes(self._buf[:end]))
            del self._buf[:end]
        return out

    def _drop_noise(self, n: int, out: list) -> None:
        """Noise is reported once per stretch (when a telegram starts or the stretch grows large)."""
        self._noise += self._buf[:n]
        del self._buf[:n]
        if self._start(0) == 0 or len(self._noise) > MAX_TELEGRAM:
            if self._noise.strip(b"\r\n\x00 "):
                out.append(Dropped(f"{len(self._noise)} bytes outside any telegram", bytes(self._noise)))
            self._noise.clear()
