"""DSMR P1 telegrams (versions 2.2 to 5, Belgian and Luxembourg variants) through dsmr-parser.

The version is detected from the telegram itself: the Belgian version line 0-0:96.1.4, the
Luxembourg logical device name 0-0:42.0.0, the P1 version 1-3:0.2.8 (42 = 4.2, 50 = 5.0), and
for the old telegrams without a version line whether a CRC follows the '!' (none in 2.2 / 3).
"""
from __future__ import annotations

import re
from decimal import Decimal

from dsmr_parser import telegram_specifications as specs
from dsmr_parser.exceptions import InvalidChecksumError, ParseError
from dsmr_parser.parsers import TelegramParser

from meter_oracle.errors import FrameRefused
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame

VERSIONS = {
    "2.2": specs.V2_2,
    "3": specs.V3,
    "4": specs.V4,
    "5": specs.V5,
    "belgium": specs.BELGIUM_FLUVIUS,
    "luxembourg": specs.LUXEMBOURG_SMARTY,
}
_PARSERS = {name: TelegramParser(spec, apply_checksum_validation=True) for name, spec in VERSIONS.items()}

_P1_VERSION = re.compile(rb"^\d-\d:0\.2\.8\((\d+)\)", re.MULTILINE)
_CRC_TRAILER = re.compile(rb"!([0-9A-Fa-f]{4})\r?\n?$")
_IMPORT_TARIFFS = [f"ELECTRICITY_USED_TARIFF_{i}" for i in (1, 2, 3, 4)]
_EXPORT_TARIFFS = [f"ELECTRICITY_DELIVERED_TARIFF_{i}" for i in (1, 2, 3, 4)]
_WH_PER_UNIT = {"kWh": Decimal(1000), "Wh": Decimal(1)}
_W_PER_UNIT = {"kW": Decimal(1000), "W": Decimal(1)}
MAX_TELEGRAM = 16 * 1024  # a P1 telegram is a few kB; more without an end is noise


def detect_version(raw: bytes) -> str:
    if b"0-0:96.1.4(" in raw:
        return "belgium"
    if b"0-0:42.0.0(" in raw:
        return "luxembourg"
    m = _P1_VERSION.search(raw)
    if m:
        return "5" if int(m.group(1)) >= 50 else "4"
    return "4" if _CRC_TRAILER.search(raw) else "2.2"


def parse_telegram(raw: bytes, version: str | None = None) -> MeterFrame:
    """Decode one telegram (bytes from '/' to the line end after '!CRC'); FrameRefused if invalid."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise FrameRefused(f"not an ASCII telegram: byte 0x{raw[e.start]:02x} at offset {e.start}") from None
    if not text.startswith("/") or "!" not in text:
        raise FrameRefused("not a telegram: it must run from '/' to '!'")
    if not text.endswith("\n"):
        text += "\r\n"  # a stream may end right after the CRC; dsmr-parser wants a line end
    version = version or detect_version(raw)
    if version not in VERSIONS:
        raise FrameRefused(f"unknown DSMR version {version!r}; known: {', '.join(VERSIONS)}")
    try:
        telegram = _PARSERS[version].parse(text, throw_ex=True)
    except InvalidChecksumError as e:
        raise FrameRefused(f"CRC mismatch (DSMR {version}): {_crc_detail(e)}") from None
    except ParseError as e:
        raise FrameRefused(f"malformed DSMR {version} telegram: {_format(e)}") from None
    except Exception as e:  # dsmr-parser raises bare errors on some corrupt lines
        raise FrameRefused(f"malformed DSMR {version} telegram: {type(e).__name__}: {e}") from None

    ident = getattr(telegram, "EQUIPMENT_IDENTIFIER", None) or getattr(telegram, "BELGIUM_EQUIPMENT_IDENTIFIER", None)
    if ident is None or not ident.value:
        raise FrameRefused(f"DSMR {version} telegram has no equipment identifier 0-0:96.1.1")
    import_wh = _energy(telegram, "ELECTRICITY_IMPORTED_TOTAL", _IMPORT_TARIFFS, "1.8")
    export_wh = _energy(telegram, "ELECTRICITY_EXPORTED_TOTAL", _EXPORT_TARIFFS, "2.8")
    stamp = getattr(telegram, "P1_MESSAGE_TIMESTAMP", None)
    return MeterFrame(
        protocol="dsmr",
        identity=ident.value,
        import_wh=import_wh,
        export_wh=export_wh,
        raw_frame=raw,
        meter_time=stamp.value.timestamp() if stamp is not None and stamp.value is not None else None,
        power_w=_power(telegram),
        detail=f"DSMR {version}",
    )


def _crc_detail(e: InvalidChecksumError) -> str:
    numbers = re.findall(r"'(\d+)'", str(e))
    if len(numbers) != 2:
        return str(e)
    computed, sent = (int(n) for n in numbers)
    return f"telegram says {sent:04X}, computed {computed:04X}"


def _format(e: ParseError) -> str:
    # dsmr-parser builds ParseError with printf-style args it never applies
    return e.args[0] % e.args[1:] if len(e.args) > 1 and isinstance(e.args[0], str) else str(e)


def _wh(obj, name: str) -> Decimal:
    if obj.value is None:
        raise FrameRefused(f"register {name} is empty")
    factor = _WH_PER_UNIT.get(obj.unit)
    if factor is None:
        raise FrameRefused(f"register {name} has unit {obj.unit!r}, expected kWh or Wh")
    return obj.value * factor


def _energy(telegram, total: str, tariffs: list[str], obis: str) -> Decimal:
    """The total register where the meter sends one, otherwise the sum of its tariff registers."""
    obj = getattr(telegram, total, None)
    if obj is not None:
        return _wh(obj, f"{obis}.0")
    found = [(name, getattr(telegram, name)) for name in tariffs if hasattr(telegram, name)]
    if not found:
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


class TelegramFramer:
    """Cuts a P1 byte stream into telegrams, resynchronising on the next '/' after any damage."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._noise = bytearray()

    def feed(self, data: bytes) -> list[bytes | Dropped]:
        self._buf += data
        out: list[bytes | Dropped] = []
        while self._buf:
            start = self._buf.find(b"/")
            if start == -1:
                self._drop_noise(len(self._buf), out)
                break
            self._drop_noise(start, out)
            nxt = self._buf.find(b"/", 1)
            bang = self._buf.find(b"!", 1)
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
        if self._buf.startswith(b"/") or len(self._noise) > MAX_TELEGRAM:
            if self._noise.strip(b"\r\n\x00 "):
                out.append(Dropped(f"{len(self._noise)} bytes outside any telegram", bytes(self._noise)))
            self._noise.clear()
