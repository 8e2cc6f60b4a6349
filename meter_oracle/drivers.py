"""Drivers: turn a meter's byte stream (or Modbus registers) into MeterFrames, or Dropped
entries naming why a stretch of bytes is not a valid frame. Reconnects with back-off."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import serial

from meter_oracle import dsmr, sml
from meter_oracle.errors import FrameRefused
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame
from meter_oracle.transport import open_stream, read_available

log = logging.getLogger("meter_oracle.drivers")

Result = MeterFrame | Dropped


class FrameDecoder:
    """Framer plus parser of one stream protocol: bytes in, results out, in stream order."""

    def __init__(self, protocol: str, dsmr_version: str | None = None) -> None:
        self._framer: dsmr.TelegramFramer | sml.SmlFramer
        if protocol == "dsmr":
            self._framer = dsmr.TelegramFramer()
            self._parse = lambda raw: dsmr.parse_telegram(raw, dsmr_version)
        elif protocol == "sml":
            self._framer = sml.SmlFramer()
            self._parse = sml.parse_frame
        else:
            raise ValueError(f"no stream decoder for protocol {protocol!r} (dsmr or sml)")
        self.protocol = protocol

    def feed(self, data: bytes) -> list[Result]:
        out: list[Result] = []
        for item in self._framer.feed(data):
            if isinstance(item, Dropped):
                out.append(item)
                continue
            try:
                out.append(self._parse(item))
            except FrameRefused as e:
                out.append(Dropped(e.reason, item))
        return out


class StreamDriver:
    def __init__(self, url: str, protocol: str, *, dsmr_version: str | None = None, serial_options: dict | None = None,
                 reconnect_max_s: float = 30.0) -> None:
        self.url = url
        self.protocol = protocol
        self.dsmr_version = dsmr_version
        self.serial_options = serial_options or {}
        self.reconnect_max_s = reconnect_max_s
        self.connected = threading.Event()  # set while the port is open

    def results(self, stop: threading.Event) -> Iterator[Result]:
        delay = 0.0
        while not stop.is_set():
            decoder = FrameDecoder(self.protocol, self.dsmr_version)  # a new connection starts clean
            try:
                with open_stream(self.url, **self.serial_options) as port:
                    delay = 0.0
                    self.connected.set()
                    while not stop.is_set():
                        data = read_available(port)
                        if data:
                            yield from decoder.feed(data)
            except (serial.SerialException, OSError) as e:
                self.connected.clear()
                delay = min(self.reconnect_max_s, delay * 2 or 0.5)
                log.warning("%s: %s; reconnecting in %.1f s", self.url, e, delay)
                stop.wait(delay)
