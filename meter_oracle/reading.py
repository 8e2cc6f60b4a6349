"""The two shapes of a reading: what a driver decoded from one frame, and the signed reading."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from eth_utils import keccak

from meter_oracle.errors import FrameRefused

U64_MAX = 2**64 - 1
PROTOCOLS = ("dsmr", "sml", "sunspec", "d0")


def meter_id(scheme: str, identity: str) -> bytes:
    """bytes32 meter id (ARCHITECTURE.md "Ids"): keccak256(utf8(scheme ":" identity))."""
    return keccak(text=f"{scheme}:{identity}")


def wh_to_mwh(wh: Decimal, register: str) -> int:
    """floor(Wh * 1000) as the project's uint64 unit; refuses what a uint64 register cannot hold."""
    if not wh.is_finite() or wh < 0:
        raise FrameRefused(f"register {register} is {wh} Wh: not a non-negative number")
    mwh = int((wh * 1000).to_integral_value(rounding=ROUND_FLOOR))
    if mwh > U64_MAX:
        raise FrameRefused(f"register {register} is {wh} Wh: exceeds uint64 milliwatt-hours")
    return mwh


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
        wh_to_mwh(self.import_wh, "import")
        wh_to_mwh(self.export_wh, "export")

    @property
    def meter_label(self) -> str:
        return f"{self.protocol}:{self.identity}"

    @property
    def meter_id(self) -> bytes:
        return meter_id(self.protocol, self.identity)

    @property
    def import_mwh(self) -> int:
        return wh_to_mwh(self.import_wh, "import")

    @property
    def export_mwh(self) -> int:
        return wh_to_mwh(self.export_wh, "export")


@dataclass(frozen=True)
class SignedReading:
    meter_id: bytes
    period: int
    timestamp: int
    import_mwh: int
    export_mwh: int
    signature: bytes
    import_wh: Decimal
    export_wh: Decimal
    raw_frame: bytes
    protocol: str

    def as_tuple(self) -> tuple[bytes, int, int, int, int]:
        """The reading tuple of the rust_core API."""
        return (self.meter_id, self.period, self.timestamp, self.import_mwh, self.export_mwh)

    def to_wire(self) -> dict:
        """One entry of the POST /v1/readings body."""
        return {
            "meter_id": "0x" + self.meter_id.hex(),
            "period": self.period,
            "timestamp": self.timestamp,
            "import_mwh": self.import_mwh,
            "export_mwh": self.export_mwh,
            "signature": "0x" + self.signature.hex(),
            "import_wh": str(self.import_wh),
            "export_wh": str(self.export_wh),
            "raw_frame": base64.b64encode(self.raw_frame).decode("ascii"),
            "protocol": self.protocol,
        }
