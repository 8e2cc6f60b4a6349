"""The oracle -> node delivery body (POST /v1/readings) parsed into typed readings; every
problem is named so the API can refuse that one reading and keep the others."""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

PROTOCOLS = ("dsmr", "sml", "sunspec")
# Archives store registers in signed 64-bit columns (SQLite INTEGER, PostgreSQL BIGINT).
MAX_REGISTER = 2**63 - 1


class WireError(ValueError):
    """A reading entry that cannot be used; the message names the field."""


@dataclass(frozen=True)
class SignedReading:
    meter_id: bytes
    period: int
    timestamp: int
    import_mwh: int
    export_mwh: int
    signature: bytes
    import_wh: str
    export_wh: str
    raw_frame: bytes
    protocol: str

    @property
    def core_tuple(self) -> tuple[bytes, int, int, int, int]:
        return (self.meter_id, self.period, self.timestamp, self.import_mwh, self.export_mwh)


def _hex(entry: dict, key: str, size: int) -> bytes:
    v = entry.get(key)
    if not isinstance(v, str) or not v.startswith("0x") or len(v) != 2 + 2 * size:
        raise WireError(f"{key}: expected 0x followed by {2 * size} hex digits")
    try:
        return bytes.fromhex(v[2:])
    except ValueError:
        raise WireError(f"{key}: not hex") from None


def _uint(entry: dict, key: str) -> int:
    v = entry.get(key)
    if type(v) is not int or v < 0:
        raise WireError(f"{key}: expected a non-negative integer")
    if v > MAX_REGISTER:
        raise WireError(f"{key}: {v} exceeds {MAX_REGISTER}")
    return v


def _decimal(entry: dict, key: str, mwh: int) -> str:
    v = entry.get(key)
    if not isinstance(v, str):
        raise WireError(f"{key}: expected an exact decimal string")
    try:
        d = Decimal(v)
    except InvalidOperation:
        raise WireError(f"{key}: {v!r} is not a decimal number") from None
    if not d.is_finite() or d < 0:
        raise WireError(f"{key}: {v!r} is not a finite non-negative number")
    if int(d * 1000) != mwh:
        raise WireError(f"{key}: {v} Wh does not round down to {mwh} mWh")
    return v


def parse_reading(entry: object) -> SignedReading:
    if not isinstance(entry, dict):
        raise WireError("reading: expected a JSON object")
    import_mwh = _uint(entry, "import_mwh")
    export_mwh = _uint(entry, "export_mwh")
    raw = entry.get("raw_frame")
    if not isinstance(raw, str):
        raise WireError("raw_frame: expected base64 text")
    try:
        frame = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise WireError("raw_frame: not valid base64") from None
    protocol = entry.get("protocol")
    if protocol not in PROTOCOLS:
        raise WireError(f"protocol: expected one of {', '.join(PROTOCOLS)}")
    return SignedReading(
        meter_id=_hex(entry, "meter_id", 32),
        period=_uint(entry, "period"),
        timestamp=_uint(entry, "timestamp"),
        import_mwh=import_mwh,
        export_mwh=export_mwh,
        signature=_hex(entry, "signature", 65),
        import_wh=_decimal(entry, "import_wh", import_mwh),
        export_wh=_decimal(entry, "export_wh", export_mwh),
        raw_frame=frame,
        protocol=protocol,
    )
