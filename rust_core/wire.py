"""The one wire schema and the in-process values of the shared encoding (ARCHITECTURE.md).

Two shapes of every concept, each defined once here:

- **In-process values** are NamedTuples whose fields are the encoding's fields in its order:
  `Reading`, `Leaf`, `SumNode`, `BatchHeader` (defined with the reference, which signs it as
  it is) and `Register` (the register a leaf counts from); ``Leaf.struct()`` is the contracts'
  Leaf, the signature split into r, s, v. They *are* the tuples rust_core's native functions
  take, so they pass in unchanged; what the native functions return is named with
  ``SumNode._make(t)`` / ``Leaf._make(t)`` (or ``nodes(...)`` for a proof).
- **Wire models** are pydantic models of the JSON the oracle, the nodes, the peers and the audit
  exchange: `SignedReading` (one entry of ``POST /v1/readings``), `Delivery` (its body),
  `DeliveryAnswer` with `Refusal` entries carrying a stable `RefusalCode`, `LeafModel`,
  `BatchHeaderModel`, `SignatureAnswer`, `LeavesAnswer` and `Problem` (an error body). Byte
  fields are 0x hex of exactly their size (eth-pydantic-types, without its zero padding of
  short values), integers are JSON integers within their uint range, never strings or floats.

`parse_reading` judges one delivered entry on its own and raises `Refused` with the code of the
field family that is wrong, so a bad entry never costs the good ones of the same delivery.

The encoding's shared concepts (`PROTOCOLS`, `meter_id`, `meter_label_id`, `group_id`,
`Domain`, `U64_MAX`, `wh_to_mwh`) are defined in rust_core/reference.py, the pure-Python
reference of the encoding, and re-exported here so that callers import them from one place.
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, NamedTuple

from eth_pydantic_types import Address, HexBytes32
from eth_pydantic_types.hex.bytes import BoundHexBytes
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from rust_core.reference import PROTOCOLS, U64_MAX, BatchHeader, Domain, group_id, meter_id, meter_label_id, wh_to_mwh

__all__ = [
    "PROTOCOLS", "U64_MAX", "U32_MAX", "Domain", "group_id", "meter_id", "meter_label_id", "wh_to_mwh",
    "Reading", "Register", "Leaf", "SumNode", "BatchHeader", "EMPTY_NODE", "nodes",
    "RefusalCode", "Refused", "FIELD_CODES", "SignedReading", "Delivery", "Refusal", "DeliveryAnswer",
    "LeafModel", "BatchHeaderModel", "SignatureAnswer", "LeavesAnswer", "ReadingsPage", "ReadingsDigest",
    "Problem",
    "parse_reading", "parse_hex32", "WH_TEXT_MAX_CHARS", "RAW_FRAME_MAX_BYTES",
]

U32_MAX = 2**32 - 1
# Field size limits, checked on the text before any decoding or arithmetic, so that every entry
# costs bounded time: a register is at most 2^64 mWh (20 digits before the point), written with
# at most a few more digits of precision; a meter frame (DSMR telegram, SML file, SunSpec block)
# is a few kB at most.
WH_TEXT_MAX_CHARS = 40
WH_EXPONENT_MAX = 24          # |exponent| of a Wh text in exponent notation ("1.5E+3")
RAW_FRAME_MAX_BYTES = 16_384


# -- in-process values ------------------------------------------------------------------
class Reading(NamedTuple):
    """ARCHITECTURE.md "Reading": what a meter signs."""

    meter_id: bytes
    period: int
    timestamp: int
    import_mwh: int
    export_mwh: int


class Register(NamedTuple):
    """A meter's cumulative registers as settled for a period: what a leaf counts from
    (the meter's leaf in the latest earlier final batch, or its registry baseline)."""

    period: int
    import_mwh: int
    export_mwh: int


class Leaf(NamedTuple):
    """A settled reading: the signed reading plus the register it counts from; the tuple
    rust_core's leaf functions and MerkleSumTree take (signature 65 bytes r||s||v)."""

    meter_id: bytes
    period: int
    timestamp: int
    import_mwh: int
    export_mwh: int
    prev_period: int
    prev_import_mwh: int
    prev_export_mwh: int
    signature: bytes

    @classmethod
    def settle(cls, reading: Reading, prev: Register, signature: bytes) -> Leaf:
        return cls(*reading, *prev, signature)

    @property
    def reading(self) -> Reading:
        return Reading(self.meter_id, self.period, self.timestamp, self.import_mwh, self.export_mwh)

    @property
    def prev(self) -> Register:
        return Register(self.prev_period, self.prev_import_mwh, self.prev_export_mwh)

    def struct(self) -> tuple:
        """The contracts' Leaf struct, whose abi.encode is the leaf's encoding: these fields
        with the signature split into r, s, v (bytes32, bytes32, uint8)."""
        sig = self.signature
        return (*self.reading, *self.prev, sig[:32], sig[32:64], sig[64])


class SumNode(NamedTuple):
    """A Merkle-sum tree node (the contracts' SumNode)."""

    hash: bytes
    import_mwh: int
    export_mwh: int


EMPTY_NODE = SumNode(b"\x00" * 32, 0, 0)


def nodes(native: Sequence[Sequence]) -> list[SumNode]:
    """Names the (hash, import, export) tuples a native proof returns."""
    return [SumNode._make(t) for t in native]


# -- refusals ---------------------------------------------------------------------------
class RefusalCode(StrEnum):
    """Why a node refused one reading: stable, for programs (the message is for people)."""

    MALFORMED_ENTRY = "malformed_entry"            # not a JSON object
    MALFORMED_METER_ID = "malformed_meter_id"
    MALFORMED_TIME = "malformed_time"              # period, timestamp
    MALFORMED_REGISTER = "malformed_register"      # import/export mWh and their exact Wh texts
    MALFORMED_SIGNATURE = "malformed_signature"
    MALFORMED_RAW_FRAME = "malformed_raw_frame"
    MALFORMED_PROTOCOL = "malformed_protocol"
    WRONG_PERIOD = "wrong_period"                  # the timestamp lies in another period
    FUTURE_TIMESTAMP = "future_timestamp"          # beyond the node's clock plus its skew allowance
    UNKNOWN_METER = "unknown_meter"
    INACTIVE_METER = "inactive_meter"
    BAD_SIGNATURE = "bad_signature"
    CONFLICTING_READING = "conflicting_reading"    # another reading of the meter at the same time
    REGISTER_REGRESSION = "register_regression"    # below the meter's register already settled
    PERIOD_CLOSED = "period_closed"
    NODE_NOT_READY = "node_not_ready"              # whole delivery: chain unreachable or deployment gone (503)

    @property
    def retryable(self) -> bool:
        """Whether the same reading may be accepted later: one from the future, once the node's
        clock has caught up (and its period is still open), or any, once the node is ready."""
        return self in (RefusalCode.FUTURE_TIMESTAMP, RefusalCode.NODE_NOT_READY)


class Refused(ValueError):
    """One reading refused, with its code and a message naming what was wrong."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- field types ------------------------------------------------------------------------
def _exact_hex(size: int):
    """0x and exactly 2*size hex digits (text), or exactly size bytes (in process)."""

    def check(v: Any) -> Any:
        if isinstance(v, (bytes, bytearray)):
            if len(v) != size:
                raise PydanticCustomError("byte_size", "expected {size} bytes, got {n}", {"size": size, "n": len(v)})
            return bytes(v)
        if not isinstance(v, str) or not v.startswith("0x") or len(v) != 2 + 2 * size:
            raise PydanticCustomError("hex_size", "expected 0x followed by {digits} hex digits", {"digits": 2 * size})
        return v

    return BeforeValidator(check)


class _HexBytes65(BoundHexBytes):
    size: ClassVar[int] = 65


def _hex_schema(size: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": f"^0x[0-9a-fA-F]{{{2 * size}}}$",
                           "examples": ["0x" + "1e" * size]})


if TYPE_CHECKING:  # what the fields hold: plain bytes
    Bytes32 = bytes
    Signature65 = bytes
else:  # eth-pydantic-types parses and serializes the hex; _exact_hex refuses what it would zero-pad
    Bytes32 = Annotated[HexBytes32, _exact_hex(32), AfterValidator(bytes), _hex_schema(32)]
    Signature65 = Annotated[_HexBytes65, _exact_hex(65), AfterValidator(bytes), _hex_schema(65)]
Uint64 = Annotated[int, Strict(), Field(ge=0, le=U64_MAX)]
Uint32 = Annotated[int, Strict(), Field(ge=0, le=U32_MAX)]
Index = Annotated[int, Strict(), Field(ge=0)]


def _base64(v: Any) -> bytes:
    if isinstance(v, bytes):
        if len(v) > RAW_FRAME_MAX_BYTES:
            raise PydanticCustomError("frame_size", "frame of {n} bytes exceeds {max} bytes",
                                      {"n": len(v), "max": RAW_FRAME_MAX_BYTES})
        return v
    if not isinstance(v, str):
        raise PydanticCustomError("base64", "expected base64 text")
    if len(v) > 4 * ((RAW_FRAME_MAX_BYTES + 2) // 3):
        raise PydanticCustomError("frame_size", "frame of {n} base64 characters exceeds {max} bytes",
                                  {"n": len(v), "max": RAW_FRAME_MAX_BYTES})
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("base64", "not valid base64") from None


Base64Frame = Annotated[
    bytes, BeforeValidator(_base64), PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str),
    WithJsonSchema({"type": "string", "contentEncoding": "base64", "description": "the meter's raw frame"}),
]


# digits, an optional fraction, an optional bounded exponent: judged on the (short) text,
# so that "1e999990" is refused before Decimal arithmetic could spend seconds on it
_WH_TEXT = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE]([+-]?[0-9]+))?")


def _wh_text(v: Any) -> Decimal:
    if isinstance(v, Decimal):
        return v
    if not isinstance(v, str):
        raise PydanticCustomError("wh_text", "expected an exact decimal string")
    if len(v) > WH_TEXT_MAX_CHARS:
        raise PydanticCustomError("wh_text", "decimal text of {n} characters exceeds {max}",
                                  {"n": len(v), "max": WH_TEXT_MAX_CHARS})
    try:
        d = Decimal(v)  # only parsed: cheap for a short text, whatever its exponent
    except InvalidOperation:
        raise PydanticCustomError("wh_text", "{v} is not a decimal number", {"v": repr(v)}) from None
    m = _WH_TEXT.fullmatch(v)
    if m is None or not d.is_finite() or d < 0:
        raise PydanticCustomError("wh_text", "{v} is not a finite non-negative number", {"v": repr(v)})
    if m.group(1) is not None and abs(int(m.group(1))) > WH_EXPONENT_MAX:
        raise PydanticCustomError("wh_text", "{v}: exponent beyond +-{max}", {"v": repr(v), "max": WH_EXPONENT_MAX})
    return d


WhText = Annotated[
    Decimal, BeforeValidator(_wh_text), PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$",
                    "description": "the register in Wh, exactly as the meter sent it"}),
]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- readings ---------------------------------------------------------------------------
class SignedReading(_Wire):
    """A signed reading as the oracle delivers it: one entry of POST /v1/readings."""

    meter_id: Bytes32
    period: Uint64
    timestamp: Uint64 = Field(description="unix seconds")
    import_mwh: Uint64
    export_mwh: Uint64
    signature: Signature65 = Field(description="EIP-712 signature by the meter's key, r||s||v")
    import_wh: WhText
    export_wh: WhText
    raw_frame: Base64Frame
    protocol: Literal[PROTOCOLS]  # type: ignore[valid-type]

    @field_validator("import_wh", "export_wh")
    @classmethod
    def _wh_matches_mwh(cls, wh: Decimal, info: ValidationInfo) -> Decimal:
        mwh_field = str(info.field_name).replace("_wh", "_mwh")
        mwh = info.data.get(mwh_field)
        if mwh is not None and wh_to_mwh(wh) != mwh:
            raise PydanticCustomError("wh_mismatch", "{wh} Wh does not round down to {mwh} mWh",
                                      {"wh": str(wh), "mwh": mwh})
        return wh

    @property
    def reading(self) -> Reading:
        """The reading tuple of the rust_core API."""
        return Reading(self.meter_id, self.period, self.timestamp, self.import_mwh, self.export_mwh)

    def to_wire(self) -> dict:
        return self.model_dump(mode="json")


FIELD_CODES: dict[str, RefusalCode] = {
    "meter_id": RefusalCode.MALFORMED_METER_ID,
    "period": RefusalCode.MALFORMED_TIME,
    "timestamp": RefusalCode.MALFORMED_TIME,
    "import_mwh": RefusalCode.MALFORMED_REGISTER,
    "export_mwh": RefusalCode.MALFORMED_REGISTER,
    "import_wh": RefusalCode.MALFORMED_REGISTER,
    "export_wh": RefusalCode.MALFORMED_REGISTER,
    "signature": RefusalCode.MALFORMED_SIGNATURE,
    "raw_frame": RefusalCode.MALFORMED_RAW_FRAME,
    "protocol": RefusalCode.MALFORMED_PROTOCOL,
}


def parse_reading(entry: object) -> SignedReading:
    """One delivered entry as a SignedReading; Refused with the code of the first wrong field."""
    if not isinstance(entry, dict):
        raise Refused(RefusalCode.MALFORMED_ENTRY, "reading: expected a JSON object")
    try:
        return SignedReading.model_validate(entry)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        field = str(err["loc"][0]) if err["loc"] else "reading"
        message = err["msg"] if err["type"] != "missing" else "missing"
        raise Refused(FIELD_CODES.get(field, RefusalCode.MALFORMED_ENTRY), f"{field}: {message}") from None


class Delivery(_Wire):
    """The body of POST /v1/readings. The node judges each entry on its own (see DeliveryAnswer)."""

    readings: list[SignedReading]


class Refusal(_Wire):
    index: Index = Field(description="position of the refused entry in the delivery")
    code: RefusalCode
    message: str = Field(description="what was wrong, for people")


class DeliveryAnswer(_Wire):
    """Every entry of a delivery is in exactly one list; 200 when none was rejected, else 422."""

    accepted: list[Index] = Field(default_factory=list)
    duplicates: list[Index] = Field(default_factory=list, description="already archived: acknowledged too")
    rejected: list[Refusal] = Field(default_factory=list)


class Problem(_Wire):
    """A request the endpoint cannot serve (malformed or oversized body, unknown batch, node not
    ready); `code` is set when the whole delivery is refused for a reason of the RefusalCode list."""

    detail: str
    code: RefusalCode | None = None


class ReadingsPage(_Wire):
    """One page of the signed readings a node archived for a period and group, conflicting ones
    included (GET /v1/readings/{period}/{group}?after=): what peers reconcile before building."""

    readings: list[SignedReading]
    next_after: str | None = Field(default=None, description="cursor of the next page; null on the last")


class ReadingsDigest(_Wire):
    """What a node archived for a period and group, in one hash (GET
    /v1/readings/{period}/{group}/digest): SHA-256 over each signed reading's meter id, timestamp
    (8 bytes, big-endian) and signature, in (meter, timestamp, signature) order. The signature
    binds the reading, so a peer whose digest equals this node's holds nothing it lacks and
    reconciliation skips its pages."""

    count: Index
    digest: Bytes32


# -- batches between peers --------------------------------------------------------------
class _ValueModel(_Wire):
    """The wire form of one NamedTuple value, field for field."""

    value_type: ClassVar[Any]  # a NamedTuple class

    @classmethod
    def of(cls, value: Sequence) -> Any:
        return cls.model_validate(cls.value_type._make(value)._asdict())

    def value(self) -> Any:
        return self.value_type(**dict(self))


class LeafModel(_ValueModel):
    value_type: ClassVar[Any] = Leaf

    meter_id: Bytes32
    period: Uint64
    timestamp: Uint64
    import_mwh: Uint64
    export_mwh: Uint64
    prev_period: Uint64
    prev_import_mwh: Uint64
    prev_export_mwh: Uint64
    signature: Signature65


class BatchHeaderModel(_ValueModel):
    value_type: ClassVar[Any] = BatchHeader
    period: Uint64
    group_id: Bytes32
    root: Bytes32
    total_import_mwh: Uint64
    total_export_mwh: Uint64
    count: Uint32
    epoch: Uint32


class SignatureAnswer(_Wire):
    """A node's signature over the header it built, under the operator epoch asked for
    (GET /v1/batches/{period}/{group}/signature?epoch=)."""

    header: BatchHeaderModel
    signer: Address
    signature: Signature65


class LeavesAnswer(_Wire):
    """The leaves of a batch, in tree order (GET /v1/batches/{period}/{group}/leaves?root=)."""

    root: Bytes32
    final: bool
    leaves: list[LeafModel]


def parse_hex32(text: str) -> bytes | None:
    """A 32-byte id given as 0x hex (or bare hex, as in a URL path); None if it is not one."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        return None
    return raw if len(raw) == 32 else None
