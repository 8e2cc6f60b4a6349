"""Byte streams from meters through pyserial: a serial device (/dev/ttyUSB0), a ser2net gateway
(socket://host:port, rfc2217://host:port) or a plain TCP port (tcp://host:port)."""
from __future__ import annotations

import serial

# P1 of DSMR 4/5 is 115200 8N1; DSMR 2.2/3 is 9600 7E1; SML optical heads are 9600 8N1.
DEFAULT_SERIAL = {"baudrate": 115200, "bytesize": 8, "parity": "N", "stopbits": 1}


def open_stream(url: str, *, timeout_s: float = 0.5, **serial_options) -> serial.SerialBase:
    if url.startswith("tcp://"):
        url = "socket://" + url.removeprefix("tcp://")
    options = {**DEFAULT_SERIAL, **serial_options} if "://" not in url else {}
    return serial.serial_for_url(url, timeout=timeout_s, **options)


def read_available(port: serial.SerialBase) -> bytes:
    """Blocks up to the port timeout for the first byte, then takes whatever else has arrived."""
    first = port.read(1)
    if not first:
        return b""
    waiting = port.in_waiting
    return first + (port.read(waiting) if waiting else b"")
