"""IEC 62056-21 optical readout (D0), mode C, as vzlogger reads older meters:

    oracle -> meter   /?!<CR><LF>                      request (300 baud, 7E1)
    meter  -> oracle  /XXXZ<identification><CR><LF>    Z: the baud rate the meter offers (0-6)
    oracle -> meter   <ACK>0Z0<CR><LF>                 data readout at that rate
    meter  -> oracle  <STX>data lines ... !<CR><LF><ETX><BCC>

BCC is the XOR of every byte after STX up to and including ETX. Data lines are OBIS
C.D.E(value*unit), optionally with the 1-0: prefix and a *F suffix. Registers: 1.8.0 (or the sum
of 1.8.1..) import, 2.8.0 / 2.8.x export; identity 0.0.0, C.1.0 or 96.1.0, else none (the device
configuration's identity)."""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from meter_oracle.errors import FrameRefused
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame

REQUEST = b"/?!\r\n"
ACK, STX, ETX = 0x06, 0x02, 0x03
BAUD = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
SERIAL: dict[str, Any] = {"baudrate": 300, "bytesize": 7, "parity": "E", "stopbits": 1}
MAX_READOUT = 16 * 1024
_IDENT = re.compile(rb"/([A-Za-z]{3})([0-9A-I])([^\r\n]{0,64})\r\n")
_LINE = re.compile(r"^(?:\d+-\d+:)?([0-9A-Z]+)\.(\d+)\.(\d+)(?:\*\d+)?\(([^()]*)\)")
_IDENTITY = (("0", "0", "0"), ("C", "1", "0"), ("96", "1", "0"))
_WH = {"kWh": Decimal(1000), "Wh": Decimal(1)}


def bcc(block: bytes) -> int:
    out = 0
    for b in block:
        out ^= b
    return out


def ack(baud_char: str) -> bytes:
    return bytes([ACK]) + f"0{baud_char}0\r\n".encode("ascii")


def parse_readout(raw: bytes) -> MeterFrame:
    """One readout: identification line, STX, data, ETX, BCC."""
    m = _IDENT.match(raw)
    if m is None:
        raise FrameRefused("not a D0 readout: no identification line /XXXZ... at its start")
    if not m.group(3).isascii() or not m.group(3).decode("ascii").isprintable():
        raise FrameRefused("D0 identification line holds bytes that are not printable ASCII")
    stx = raw.find(bytes([STX]), m.end())
    etx = raw.find(bytes([ETX]), stx + 1)
    if stx == -1 or etx == -1 or len(raw) < etx + 2:
        raise FrameRefused("D0 readout has no data block STX ... ETX BCC")
    sent, computed = raw[etx + 1], bcc(raw[stx + 1 : etx + 1])
    if sent != computed:
        raise FrameRefused(f"BCC mismatch: readout says {sent:02x}, computed {computed:02x}")
    try:
        lines = raw[stx + 1 : etx].decode("ascii").split("\r\n")
    except UnicodeDecodeError:
        raise FrameRefused("D0 data block is not ASCII") from None
    if "!" not in lines:
        raise FrameRefused("D0 data block does not end with the line '!'")
    values: dict[tuple[str, str, str], str] = {}
    for line in lines[: lines.index("!")]:
        lm = _LINE.match(line)
        if lm:
            values.setdefault((lm[1], lm[2], lm[3]), lm[4])
    identity = next((values[k] for k in _IDENTITY if values.get(k)), "")
    return MeterFrame(
        protocol="d0",
        identity=identity,
        import_wh=_energy(values, "1"),
        export_wh=_energy(values, "2", optional=True),
        raw_frame=raw,
        detail=f"D0 mode C {m.group(1).decode()}{m.group(3).decode().strip()}" + ("" if identity else
                "; the readout carries no meter identity: set the device's identity in the configuration"),
    )


def _wh(text: str, name: str) -> Decimal:
    number, _, unit = text.partition("*")
    if unit not in _WH:
        raise FrameRefused(f"register {name} has unit {unit!r}, expected kWh or Wh")
    try:
        return Decimal(number) * _WH[unit]
    except InvalidOperation:
        raise FrameRefused(f"register {name} holds {number!r}, not a number") from None


def _energy(values: dict, c: str, optional: bool = False) -> Decimal:
    if (c, "8", "0") in values:
        return _wh(values[(c, "8", "0")], f"{c}.8.0")
    tariffs = sorted(k for k in values if k[0] == c and k[1] == "8")
    if not tariffs:
        if optional:
            return Decimal(0)
        raise FrameRefused(f"D0 readout has no energy register {c}.8.0 nor tariff registers {c}.8.x")
    return sum((_wh(values[k], ".".join(k)) for k in tariffs), Decimal(0))


class D0Framer:
    """Cuts readouts (identification line to BCC) out of the bytes a D0 session collects."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes | Dropped]:
        self._buf += data
        out: list[bytes | Dropped] = []
        while True:
            m = _IDENT.search(self._buf)
            if m is None:
                if len(self._buf) > MAX_READOUT:
                    out.append(Dropped("no D0 identification line /XXXZ...", bytes(self._buf)))
                    self._buf.clear()
                break
            if m.start() and bytes(self._buf[: m.start()]).strip(b"\r\n\x00"):
                out.append(Dropped(f"{m.start()} bytes outside any D0 readout", bytes(self._buf[: m.start()])))
            del self._buf[: m.start()]
            etx = self._buf.find(bytes([ETX]))
            nxt = _IDENT.search(self._buf, 1)
            if nxt is not None and (etx == -1 or nxt.start() < etx):
                out.append(Dropped("D0 readout truncated: a new identification began before its ETX",
                                   bytes(self._buf[: nxt.start()])))
                del self._buf[: nxt.start()]
                continue
            if etx == -1 or len(self._buf) < etx + 2:
                if len(self._buf) > MAX_READOUT:
                    out.append(Dropped(f"no D0 ETX within {MAX_READOUT} bytes", bytes(self._buf)))
                    self._buf.clear()
                break
            out.append(bytes(self._buf[: etx + 2]))
            del self._buf[: etx + 2]
        return out


class D0Session:
    """Mode C readouts on an open port: request, identification, acknowledgement at the meter's
    rate, data block. Yields each readout's bytes (or b"" when the meter did not answer)."""

    def __init__(self, port, *, poll_s: float = 1.0, timeout_s: float = 5.0) -> None:
        self.port, self.poll_s, self.timeout_s = port, poll_s, timeout_s

    def readouts(self, stop: threading.Event) -> Iterator[bytes]:
        while not stop.is_set():
            yield self.readout()
            stop.wait(self.poll_s)

    def readout(self) -> bytes:
        port = self.port
        self._baud(SERIAL["baudrate"])
        port.reset_input_buffer()
        port.write(REQUEST)
        ident = self._read_until(lambda b: b.endswith(b"\r\n") and b"/" in b)
        m = _IDENT.search(ident)
        if m is None:
            return ident  # the framer reports what came instead
        baud_char = m.group(2).decode()
        port.write(ack(baud_char))
        if baud_char in BAUD:
            port.flush()
            self._baud(BAUD[baud_char])
        block = self._read_until(lambda b: len(b) >= 2 and b[-2] == ETX)
        return ident + block

    def _baud(self, rate: int) -> None:
        if self.port.baudrate != rate:  # only on a change (re-applying the same rate fails on a pty)
            self.port.baudrate = rate

    def _read_until(self, done) -> bytes:
        out = bytearray()
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline and len(out) < MAX_READOUT:
            byte = self.port.read(1)
            if byte:
                out += byte
                if done(out):
                    break
        return bytes(out)
