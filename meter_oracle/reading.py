"""The two shapes of a reading: what a driver decoded from one frame (MeterFrame), and the
signed reading as it is stored and delivered (rust_core.wire.SignedReading, the one wire schema
the node validates against)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from meter_oracle.errors import FrameRefused
from rust_core.wire import PROTOCOLS, SignedReading, meter_id, wh_to_mwh

__all__ = ["PROTOCOLS", "MeterFrame", "SignedReading", "meter_id", "register_mwh"]


def register_mwh(wh: Decimal, register: str) -> int:
    """wh_to_mwh, refusing the frame when a register cannot be one of the encoding's uint64 mWh."""
    try:
        return wh_to_mwh(wh, f"register {register}")
    except ValueError as e:
        raise FrameRefused(str(e)) from None


@dataclass(frozen=True)
class MeterFrame:
    """One frame decoded by a driver: the meter's identity and cumulative registers, exact."""

    protocol: str  # dsmr | sml | sunspec
    identity: str  # dsmr: raw 0-0:96.1.1; sml: server id lowercase hex; sunspec: manufacturer:serial
    import_wh: Decimal
    export_wh: Decimal
    raw_frame: bytes
    meter_time: float | None = None  # the meter's own clock, unix seconds, when the frame has one
    power_w: Decimal | None = None  # instantaneous net power the meter reports, when it does
    detail: str = ""  # e.g. the detected DSMR version

    def __post_init__(self) -> None:
        # Converting here makes a frame that cannot become a reading fail at the parser.
        register_mwh(self.import_wh, "import")
        register_mwh(self.export_wh, "export")

    @property
    def meter_label(self) -> str:
        return f"{self.protocol}:{self.identity}"

    @property
    def meter_id(self) -> bytes:
        return meter_id(self.protocol, self.identity)

    @property
    def import_mwh(self) -> int:
        return register_mwh(self.import_wh, "import")

    @property
    def export_mwh(self) -> int:
        return register_mwh(self.export_wh, "export")
