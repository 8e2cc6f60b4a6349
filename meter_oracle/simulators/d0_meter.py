"""A D0 (IEC 62056-21 mode C) meter behind an optical head: answers each request /?! with its
identification, waits for the acknowledgement, then sends the data block with its BCC. Served
over TCP (an optical head on a ser2net gateway) or a pseudo-terminal."""
from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable
from decimal import ROUND_FLOOR, Decimal

from meter_oracle.d0 import ACK, ETX, REQUEST, STX, bcc
from meter_oracle.simulators import RegisterSource
from meter_oracle.simulators.stream_server import PtyFrameServer, TcpFrameServer


def build_readout(identity: str, import_wh: Decimal, export_wh: Decimal, *, ident: str = "/ESY5Q3DA1024 V3.04",
                  tariffs: bool = False) -> tuple[bytes, bytes]:
    """(identification line, data block with BCC) of one readout; registers in kWh, 4 decimals."""
    def kwh(wh: Decimal) -> str:
        return f"{(wh / 1000).quantize(Decimal('0.0001'), rounding=ROUND_FLOOR):012.4f}*kWh"
    lines = [f"0.0.0({identity})"] if identity else []
    if tariffs:
        lines += [f"1.8.1({kwh(import_wh)})", f"1.8.2({kwh(Decimal(0))})", f"2.8.1({kwh(export_wh)})"]
    else:
        lines += [f"1-0:1.8.0*255({kwh(import_wh)})", f"1-0:2.8.0*255({kwh(export_wh)})"]
    lines += ["C.1.1()", "F.F(00000000)", "!"]
    data = ("\r\n".join(lines) + "\r\n").encode("ascii") + bytes([ETX])
    return (ident + "\r\n").encode("ascii"), bytes([STX]) + data + bytes([bcc(data)])


class D0Meter:
    def __init__(self, identity: str, source: RegisterSource, *, baud_char: str = "5", tariffs: bool = False) -> None:
        self.identity, self.source, self.baud_char, self.tariffs = identity, source, baud_char, tariffs
        self.requests = 0

    def converse(self, read: Callable[[], bytes | None], write: Callable[[bytes], None], stop: threading.Event) -> None:
        """Serve requests until the line closes or stop is set."""
        buf = bytearray()
        while not stop.is_set():
            chunk = read()
            if chunk is None:
                return
            buf += chunk
            if REQUEST not in buf:
                continue
            del buf[: buf.index(REQUEST) + len(REQUEST)]
            self.requests += 1
            ident, block = build_readout(self.identity, *self.source.registers(time.time()),
                                         ident=f"/ESY{self.baud_char}Q3DA1024 V3.04", tariffs=self.tariffs)
            write(ident)
            deadline = time.monotonic() + 3
            while bytes([ACK]) not in buf and time.monotonic() < deadline and not stop.is_set():
                chunk = read()
                if chunk is None:
                    return
                buf += chunk
            if bytes([ACK]) in buf:
                end = buf.find(b"\r\n", buf.index(bytes([ACK])))
                del buf[: end + 2 if end != -1 else len(buf)]
                write(block)


class D0TcpServer(TcpFrameServer):
    """Each client gets its own conversation with the meter."""

    def __init__(self, meter: D0Meter, host: str = "127.0.0.1") -> None:
        super().__init__(lambda now: None, host=host)
        self.meter = meter

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)

        def read() -> bytes | None:
            try:
                data = conn.recv(4096)
            except TimeoutError:
                return b""
            except OSError:
                return None
            return data or None
        with conn:
            try:
                self.meter.converse(read, conn.sendall, self._stop)
            except OSError:
                pass


class D0PtyServer(PtyFrameServer):
    """`url` is the device path of a pseudo-terminal, as an optical head's /dev/ttyUSB0."""

    def __init__(self, meter: D0Meter) -> None:
        super().__init__(lambda now: None)
        self.meter = meter

    def start(self) -> D0PtyServer:
        def read() -> bytes | None:
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if not ready:
                return b""
            try:
                return os.read(self._master, 4096)
            except OSError:
                return None
        self._spawn(self.meter.converse, read, lambda b: os.write(self._master, b), self._stop)
        return self
