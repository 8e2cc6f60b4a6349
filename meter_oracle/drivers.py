"""Drivers: turn a meter's byte stream (or Modbus registers) into MeterFrames, or Dropped
entries naming why a stretch of bytes is not a valid frame. Reconnects with back-off."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace

import serial

from meter_oracle import d0, dsmr, p1_cipher, sml
from meter_oracle.errors import FrameRefused
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame
from meter_oracle.transport import open_stream, read_available

log = logging.getLogger("meter_oracle.drivers")

Result = MeterFrame | Dropped


def apply_identity(frame: MeterFrame, identity: str | None) -> MeterFrame:
    """The configured identity of a device: required when the frame carries none (Swedish and
    Sagemcom T210-D telegrams), and must match when it does."""
    if identity is None:
        return frame
    if frame.identity and frame.identity != identity:
        raise FrameRefused(f"meter identity {frame.identity!r} in the frame is not the configured identity {identity!r}")
    return replace(frame, identity=identity)


class FrameDecoder:
    """Framer plus parser of one stream protocol: bytes in, results out, in stream order.

    dsmr_version: a dsmr.SPECS name to force instead of detecting; identity: the configured
    meter identity (apply_identity); decryption_key / authentication_key: an encrypted P1 port
    (p1_cipher); crc: the SML CRC variant (x25 or kermit)."""

    def __init__(self, protocol: str, dsmr_version: str | None = None, *, identity: str | None = None,
                 decryption_key: bytes | None = None, authentication_key: bytes | None = None,
                 crc: str = "x25") -> None:
        self._framer: dsmr.TelegramFramer | sml.SmlFramer | p1_cipher.CipherFramer | d0.D0Framer
        if protocol == "dsmr" and decryption_key is not None:
            auth = authentication_key or p1_cipher.SMARTY_AUTHENTICATION_KEY
            self._framer = p1_cipher.CipherFramer()
            self._parse = lambda raw: _decrypted(dsmr.parse_telegram(p1_cipher.decrypt(raw, decryption_key, auth),
                                                                     dsmr_version), raw)
        elif protocol == "dsmr":
            self._framer = dsmr.TelegramFramer()
            self._parse = lambda raw: dsmr.parse_telegram(raw, dsmr_version)
        elif protocol == "sml":
            self._framer = sml.SmlFramer(crc)
            self._parse = lambda raw: sml.parse_frame(raw, crc)
        elif protocol == "d0":
            self._framer = d0.D0Framer()
            self._parse = d0.parse_readout
        else:
            raise ValueError(f"no stream decoder for protocol {protocol!r} (dsmr, sml or d0)")
        self.protocol = protocol
        self.identity = identity

    def feed(self, data: bytes) -> list[Result]:
        out: list[Result] = []
        items = self._framer.feed(data)
        while items:
            for item in items:
                if isinstance(item, Dropped):
                    out.append(item)
                    continue
                try:
                    out.append(apply_identity(self._parse(item), self.identity))
                except FrameRefused as e:
                    out.append(Dropped(e.reason, item))
                    if isinstance(self._framer, p1_cipher.CipherFramer) and not e.reason.startswith("meter identity"):
                        self._framer.rescan(item)  # a damaged length may hide the next frame inside
            # the cipher framer hands out one frame per call (see p1_cipher.CipherFramer)
            framed = any(isinstance(i, bytes) for i in items)
            items = self._framer.feed(b"") if framed and isinstance(self._framer, p1_cipher.CipherFramer) else []
        return out


def _decrypted(frame: MeterFrame, ciphertext: bytes) -> MeterFrame:
    """The reading keeps the decrypted telegram as its raw frame (what a person can check)."""
    return replace(frame, detail=f"{frame.detail}, decrypted ({len(ciphertext)}-byte DLMS frame)")


def serial_defaults(protocol: str, dsmr_version: str | None) -> dict:
    """Line settings that follow the protocol: DSMR per spec (2.2/3: 9600 7E1), SML 9600 8N1,
    D0 mode C starts at 300 7E1."""
    if protocol == "dsmr":
        return dict(dsmr.SERIAL.get(dsmr_version or "5", dsmr.SERIAL["5"]))
    if protocol == "d0":
        return dict(d0.SERIAL)
    return {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1}


class StreamDriver:
    def __init__(self, url: str, protocol: str, *, dsmr_version: str | None = None, serial_options: dict | None = None,
                 reconnect_max_s: float = 30.0, **decoder_options) -> None:
        """decoder_options: FrameDecoder's identity, decryption_key, authentication_key, crc."""
        self.url = url
        self.protocol = protocol
        self.dsmr_version = dsmr_version
        self.serial_options = {**serial_defaults(protocol, dsmr_version), **(serial_options or {})}
        self.decoder_options = decoder_options
        self.reconnect_max_s = reconnect_max_s
        self.connected = threading.Event()  # set while the port is open

    def _session(self, port, stop: threading.Event) -> Iterator[bytes]:
        """What the meter sends; a D0 meter speaks only when asked (d0.D0Session)."""
        if self.protocol == "d0":
            yield from d0.D0Session(port).readouts(stop)
            return
        while not stop.is_set():
            yield read_available(port)

    def results(self, stop: threading.Event) -> Iterator[Result]:
        delay = 0.0
        while not stop.is_set():
            decoder = FrameDecoder(self.protocol, self.dsmr_version, **self.decoder_options)  # a new connection starts clean
            try:
                with open_stream(self.url, **self.serial_options) as port:
                    delay = 0.0
                    self.connected.set()
                    for data in self._session(port, stop):
                        if data:
                            yield from decoder.feed(data)
            except (serial.SerialException, OSError) as e:
                self.connected.clear()
                delay = min(self.reconnect_max_s, delay * 2 or 0.5)
                log.warning("%s: %s; reconnecting in %.1f s", self.url, e, delay)
                stop.wait(delay)
