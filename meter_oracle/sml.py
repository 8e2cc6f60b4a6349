"""SML 1.04 frames (German meters, optical head) through smllib.

The transport layer (escape sequences, 4-byte alignment, padding, CRC16/X.25) is framed here so
that a damaged frame never swallows the good one after it; smllib's CRC and message parser do
the rest. Errors are named after smllib's exception classes (CrcError, InvalidBufferPos, ...).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import smllib.crc
from smllib.errors import SmlLibException
from smllib.sml import SmlGetListResponse, SmlListEntry
from smllib.sml_frame import SmlFrame

from meter_oracle.errors import FrameRefused
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame

ESC = b"\x1b\x1b\x1b\x1b"
START = ESC + b"\x01\x01\x01\x01"
GET_LIST_RESPONSE = 0x0701
UNIT_WH = 30
UNIT_W = 27
MAX_FRAME = 50 * 1024
MAX_NOISE = 4096
CRC_VARIANTS = ("x25", "kermit")  # most meters X.25; some (e.g. older Holley, DZG) Kermit


def _crc_function(variant: str):
    if variant not in CRC_VARIANTS:
        raise ValueError(f"SML CRC variant {variant!r} is not one of {', '.join(CRC_VARIANTS)}")
    return getattr(smllib.crc, variant).get_crc


def stable(e: Exception) -> str:
    """An exception's text without object reprs or memory addresses, so that the same fault gives
    the same refusal text every time."""
    text = re.sub(r"<[^<>]*? at 0x[0-9a-f]+>|<([A-Za-z_][\w.]*)[^<>]*>", lambda m: m.group(1) or "object", str(e))
    return re.sub(r" at 0x[0-9a-f]+", "", text)


def check_transport(msg: bytes, crc: str = "x25") -> bytes:
    """Checks CRC (X.25 or Kermit) and padding of one transport frame (START ... ESC 1a pad crc
    crc); returns the unescaped payload."""
    crc_sent = msg[-2] << 8 | msg[-1]
    crc_calc = _crc_function(crc)(msg[:-2])
    if crc_sent != crc_calc:
        raise FrameRefused(f"CrcError: frame CRC {crc_sent:04x}, computed {crc_calc:04x}")
    padding = msg[-3]  # some meters pad a full 4 bytes; smllib accepts that, so do we
    if 16 + padding > len(msg):
        raise FrameRefused(f"InvalidPadding: {padding} padding bytes in a {len(msg)}-byte frame")
    payload = unescape(msg[8 : len(msg) - 8])
    return payload[: len(payload) - padding]


def unescape(body: bytes) -> bytes:
    """Escapes sit on 4-byte boundaries: an aligned 1b1b1b1b 1b1b1b1b is one 1b1b1b1b of data."""
    out, pos = bytearray(), 0
    while pos < len(body):
        block = body[pos : pos + 4]
        out += block
        pos += 8 if block == ESC and body[pos + 4 : pos + 8] == ESC else 4
    return bytes(out)


def parse_frame(msg: bytes, crc: str = "x25") -> MeterFrame:
    """Decode one SML transport frame into the meter's server id and energy registers."""
    payload = check_transport(msg, crc)
    try:
        # The full parse, not smllib's get_obis() shortcut: get_obis() scans the raw bytes for
        # 77 07 01 and can land inside another value (testdata sml/frame5: InvalidBufferPos on a
        # valid frame); smllib documents falling back to parse_frame() for such frames.
        messages = SmlFrame(payload, msg_ctx=msg).parse_frame()
    except SmlLibException as e:
        body = _tolerant_get_list(payload)  # an odd entry the reading may not need
        if body is None:
            raise FrameRefused(f"{type(e).__name__}: {stable(e)}") from None
    except (IndexError, ValueError, TypeError, AttributeError, KeyError) as e:
        body = _tolerant_get_list(payload)
        if body is None:
            raise FrameRefused(f"malformed SML message: {type(e).__name__}: {stable(e)}") from None
    else:
        lists = [m.message_body for m in messages if isinstance(m.message_body, SmlGetListResponse)]
        if not lists:
            raise FrameRefused("SML frame has no GetListResponse (no register values)")
        body = _GetList(lists[0].server_id, list(lists[0].val_list or []), lists[0].act_gateway_time)
    entries = body.val_list
    if not body.server_id or not isinstance(body.server_id, str):
        raise FrameRefused("SML GetListResponse has no server id")
    # (C, E) of A-0:C.8.E, C 1 import / 2 export; judged only when the reading uses them, so an
    # odd entry the reading does not need (a tariff beside a total, a vendor register) is ignored
    registers: dict[tuple[int, int], object] = {}
    power = None
    for entry in entries:
        code = entry.obis if isinstance(entry.obis, str) else ""
        if len(code) != 12 or code[0:2] != "01":
            continue
        c, d, tariff = int(code[4:6], 16), int(code[6:8], 16), int(code[8:10], 16)
        if c in (1, 2) and d == 8:
            registers.setdefault((c, tariff), entry)
        elif c == 16 and d == 7 and tariff == 0 and entry.unit == UNIT_W and isinstance(entry.value, int) \
                and isinstance(entry.scaler, (int, type(None))):
            power = _value(entry, UNIT_W, "16.7.0", "W")
    if not any(c in (1, 2) for c, _ in registers):
        raise FrameRefused("SML frame has no energy register 1.8.x (import) nor 2.8.x (export)")
    return MeterFrame(
        protocol="sml",
        identity=body.server_id.lower(),
        import_wh=_energy(registers, 1),
        export_wh=_energy(registers, 2),
        raw_frame=msg,
        meter_time=body.act_gateway_time.timestamp() if isinstance(body.act_gateway_time, datetime) else None,
        power_w=power,
        detail="SML 1.04",
    )


@dataclass
class _GetList:
    server_id: object
    val_list: list
    act_gateway_time: object


def _tolerant_get_list(payload: bytes) -> _GetList | None:
    """The GetListResponse of a frame smllib cannot build whole, entry by entry: smllib reads
    the structure, each val_list entry is built on its own and an entry that does not build is
    left out (the energy registers are then judged as usual). None if even the structure fails."""
    frame = SmlFrame(payload)
    ctx = frame.build_ctx
    try:
        while frame.next_pos < frame.buf_len:
            if frame.buffer[frame.next_pos] == 0x00:  # padding between messages
                frame.next_pos += 1
                continue
            message = frame._parse_msg(frame.get_value()).get_value(list)  # structure only
            tag, content = message[3].get_value(list)
            if tag.value != GET_LIST_RESPONSE:
                continue
            fields = content.get_value(list)
            entries = []
            for snippet in fields[4].get_value(list):
                try:
                    entries.append(ctx[SmlListEntry].build(snippet, ctx))
                except (SmlLibException, IndexError, ValueError, TypeError, AttributeError, KeyError):
                    continue
            return _GetList(fields[1].value, entries, None)
    except (SmlLibException, IndexError, ValueError, TypeError, AttributeError, KeyError):
        return None
    return None


def _value(entry, unit: int, name: str, unit_name: str) -> Decimal:
    if entry.unit != unit:
        raise FrameRefused(f"register {name} has SML unit code {entry.unit}, expected {unit} ({unit_name})")
    if not isinstance(entry.value, int) or isinstance(entry.value, bool):
        raise FrameRefused(f"register {name} holds {type(entry.value).__name__}, expected an integer")
    if not isinstance(entry.scaler, (int, type(None))) or isinstance(entry.scaler, bool):
        raise FrameRefused(f"register {name} has a scaler of type {type(entry.scaler).__name__}, expected an integer")
    scaler = entry.scaler or 0
    return Decimal(entry.value * 10**scaler) if scaler >= 0 else Decimal(entry.value).scaleb(scaler)


def _energy(registers: dict, c: int) -> Decimal:
    """The total register C.8.0 where sent, otherwise the sum of the tariff registers C.8.1...;
    none at all is zero (a generator's meter has no import register, a consumer's no export)."""
    if (c, 0) in registers:
        return _value(registers[(c, 0)], UNIT_WH, f"{c}.8.0", "Wh")
    tariffs = [(e, entry) for (cc, e), entry in sorted(registers.items()) if cc == c and e > 0]
    return sum((_value(entry, UNIT_WH, f"{c}.8.{e}", "Wh") for e, entry in tariffs), Decimal(0))


class SmlFramer:
    """Cuts an SML byte stream into transport frames; resynchronises on the next start sequence."""

    def __init__(self, crc: str = "x25") -> None:
        self._buf = bytearray()
        self._noise = bytearray()
        self._crc = _crc_function(crc)

    def feed(self, data: bytes) -> list[bytes | Dropped]:
        self._buf += data
        out: list[bytes | Dropped] = []
        while True:
            start = self._buf.find(START)
            if start == -1:
                keep = len(START) - 1  # a start sequence may be split across reads
                if len(self._buf) > keep:
                    self._drop(len(self._buf) - keep, "bytes outside any SML frame", out)
                break
            self._drop(start, "bytes outside any SML frame", out)
            end = self._scan()
            if end is None:
                if len(self._buf) > MAX_FRAME:
                    self._drop(len(self._buf), f"no SML end sequence within {MAX_FRAME} bytes", out)
                break
            if isinstance(end, Dropped):
                out.append(end)
                continue
            end = self._cut_before_next_start(end)
            out.append(bytes(self._buf[:end]))
            del self._buf[:end]
        return out

    def _cut_before_next_start(self, end: int) -> int:
        """When the CRC fails, the frame may be a cut-short one that ran into the next frame:
        its start sequence inside (read as escaped data), or its first 1b bytes taken as padding
        and CRC. Cut there and leave the rest to the next frame."""
        msg = bytes(self._buf[:end])
        if self._crc(msg[:-2]) == (msg[-2] << 8 | msg[-1]):
            return end
        inner = self._buf.find(START, len(START), end)
        if inner != -1:
            return inner
        for p in range(end - 3, end):
            if all(b == 0x1B for b in self._buf[p:end]):
                return p
        return end

    def _scan(self) -> int | Dropped | None:
        """End offset of the frame at the buffer start, a Dropped for a broken one, None if incomplete."""
        buf = self._buf
        restart = self._next_start()
        pos = len(START)
        while pos + 8 <= len(buf) and (restart is None or pos < restart):
            if buf[pos : pos + 4] != ESC:
                pos += 4
                continue
            tag = buf[pos + 4 : pos + 8]
            if tag == ESC:
                pos += 8  # escaped data
            elif tag[0] == 0x1A:
                if restart is not None and restart < pos + 8:
                    break  # the end sequence runs into the next frame's start: this one is cut short
                return pos + 8
            elif tag != b"\x01\x01\x01\x01":
                # cut before the bad escape: its 1b bytes may begin the next frame's start
                dropped = Dropped(f"InvalidEscape: escape sequence 1b1b1b1b {tag.hex()}", bytes(buf[:pos]))
                del buf[:pos]
                return dropped
            else:
                break
        misaligned = self._misaligned_end(pos if restart is None else restart)
        if misaligned is not None:
            return misaligned
        if restart is None:
            return None
        dropped = Dropped("SML frame truncated: a new frame began before its end", bytes(buf[:restart]))
        del buf[:restart]
        return dropped

    def _misaligned_end(self, limit: int) -> Dropped | None:
        """An end sequence 1b1b1b1b 1a off the 4-byte grid whose CRC holds: a frame with a
        misaligned end marker (the data before it is not padded to 4 bytes)."""
        buf, at = self._buf, len(START)
        while (at := buf.find(ESC + b"\x1a", at, limit + 5)) != -1:
            end = at + 8
            if at % 4 and end <= len(buf) and self._crc(bytes(buf[: end - 2])) == (buf[end - 2] << 8 | buf[end - 1]):
                dropped = Dropped(f"InvalidEndMarker: misaligned end sequence 1b1b1b1b 1a at offset {at} "
                                  "(an SML end marker sits on a 4-byte boundary)", bytes(buf[:end]))
                del buf[:end]
                return dropped
            at += 1
        return None

    def _next_start(self) -> int | None:
        """Where the next frame starts, aligned or not (a damaged frame loses its alignment)."""
        pos = len(START)
        while (pos := self._buf.find(START, pos)) != -1:
            if self._buf[pos - 4 : pos] != ESC:  # not the tail of an escaped 1b1b1b1b in the data
                return pos
            pos += 1
        return None

    def _drop(self, n: int, reason: str, out: list) -> None:
        """Noise is reported once per stretch (when a frame starts or the stretch grows large)."""
        self._noise += self._buf[:n]
        del self._buf[:n]
        if self._buf.startswith(START) or len(self._noise) > MAX_NOISE:
            if self._noise.strip(b"\x00"):
                out.append(Dropped(f"{len(self._noise)} {reason}", bytes(self._noise)))
            self._noise.clear()
