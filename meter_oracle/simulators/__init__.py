"""Device simulators that serve real protocol bytes, driven by a register source: any object
with ``registers(now: float) -> tuple[Decimal, Decimal]`` giving cumulative (import_wh,
export_wh) at unix time ``now``. profiles.py has simple household sources; richer models plug
in through the same method.

- dsmr_telegram.build_telegram / sml_frame.build_frame: protocol encoders (valid CRC, escapes)
- stream_server.TcpFrameServer / PtyFrameServer: serve frames over TCP or a pseudo-terminal
- sunspec_device.SunSpecServer: a pymodbus Modbus TCP server with the SunSpec register map
"""
from decimal import Decimal
from typing import Protocol


class RegisterSource(Protocol):
    def registers(self, now: float) -> tuple[Decimal, Decimal]: ...
