"""Serve meter frames as a byte stream, the way a P1 port or an optical head does: over TCP
(what a ser2net gateway offers; read it with socket://host:port) or a pseudo-terminal (a real
serial device path for pyserial)."""
from __future__ import annotations

import os
import socket
import threading
import time
import tty
from collections.abc import Callable, Iterable
from decimal import Decimal

from meter_oracle.simulators import RegisterSource
from meter_oracle.simulators.dsmr_telegram import build_telegram
from meter_oracle.simulators.sml_frame import build_frame

FrameSource = Callable[[float], bytes | None]  # bytes to send at time now; None once exhausted


class DsmrMeter:
    def __init__(self, identity: str, source: RegisterSource, version: str = "5") -> None:
        self.identity, self.source, self.version = identity, source, version

    def __call__(self, now: float) -> bytes:
        imp, exp = self.source.registers(now)
        return build_telegram(self.identity, imp, exp, now, version=self.version)


class SmlMeter:
    def __init__(self, server_id: bytes, source: RegisterSource, scaler: int = -1) -> None:
        self.server_id, self.source, self.scaler = server_id, source, scaler

    def __call__(self, now: float) -> bytes:
        imp, exp = self.source.registers(now)
        return build_frame(self.server_id, Decimal(imp), Decimal(exp), scaler=self.scaler)


def replay(chunks: Iterable[bytes]) -> FrameSource:
    """A frame source that sends the given byte strings once, in order (captures, fuzz streams)."""
    it = iter(chunks)
    return lambda now: next(it, None)


class _Server:
    def __init__(self, frames: FrameSource, interval_s: float, chunk: int) -> None:
        self.frames, self.interval_s, self.chunk = frames, interval_s, chunk
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _pump(self, write: Callable[[bytes], None]) -> None:
        while not self._stop.is_set():
            data = self.frames(time.time())
            if data is None:
                return
            for i in range(0, len(data), self.chunk):
                write(data[i : i + self.chunk])
            self._stop.wait(self.interval_s)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def start(self):
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class TcpFrameServer(_Server):
    """Every client gets the frame stream from the moment it connects."""

    def __init__(self, frames: FrameSource, *, interval_s: float = 1.0, chunk: int = 4096, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(frames, interval_s, chunk)
        self._sock = socket.create_server((host, port))
        self.host, self.port = self._sock.getsockname()[:2]

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def start(self) -> TcpFrameServer:
        self._sock.settimeout(0.2)
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._pump(conn.sendall)
                self._stop.wait()  # keep the line open, as a meter does
            except OSError:
                pass  # the client went away


class PtyFrameServer(_Server):
    """A pseudo-terminal: `url` is the device path a reader opens like /dev/ttyUSB0."""

    def __init__(self, frames: FrameSource, *, interval_s: float = 1.0, chunk: int = 4096) -> None:
        super().__init__(frames, interval_s, chunk)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no CR/LF translation: a P1 CRC covers the CRLFs
        self.url = os.ttyname(self._slave)

    def start(self) -> PtyFrameServer:
        self._spawn(self._pump, lambda b: os.write(self._master, b))
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        os.close(self._master)
        os.close(self._slave)
