"""SunSpec register layouts from pysunspec2's model definitions (the JSON models it ships), not
hand-kept offsets: point offsets, sizes, types and scale-factor names come from the definition.

ENERGY lists the models with AC energy registers a settlement reading is made of:
inverters 101-103 (acc32 + WH_SF) and 111-113 (float32) count production as export; meters
201-204 (acc32 + TotWh_SF), 211-214 (float32) and the secure meter 220; the DER AC measurement
model 701 (uint64 TotWhInj / TotWhAbs + TotWh_SF). The other DER models (702 and on) carry
settings and ratings, 714 DC-port energy, which is not the grid connection point.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import cache

from sunspec2 import device as sunspec_device

SUNS = (0x5375, 0x6E53)  # "SunS"
BASES = (40000, 0, 50000)
END_MODEL = 0xFFFF
COMMON = 1
SIZE = {"int16": 1, "uint16": 1, "sunssf": 1, "enum16": 1, "bitfield16": 1, "count": 1, "pad": 1,
        "acc16": 1, "raw16": 1, "int32": 2, "uint32": 2, "acc32": 2, "float32": 2, "enum32": 2,
        "bitfield32": 2, "ipaddr": 2, "int64": 4, "uint64": 4, "acc64": 4, "float64": 4, "ipv6addr": 8,
        "eui48": 4}
NOT_IMPLEMENTED = {"int16": 0x8000, "sunssf": 0x8000, "uint16": 0xFFFF, "uint32": 0xFFFFFFFF,
                   "int32": 0x80000000, "uint64": 0xFFFFFFFFFFFFFFFF, "int64": 0x8000000000000000}
# (the spec also calls an accumulator of 0 "not accumulated"; a new meter's export really is 0 Wh)


@dataclass(frozen=True)
class Point:
    name: str
    offset: int  # registers from the model's ID register
    size: int
    type: str
    sf: str | None


@dataclass(frozen=True)
class Layout:
    id: int
    name: str
    length: int  # the model's L: registers after ID and L
    points: dict[str, Point]


@dataclass(frozen=True)
class EnergyPoints:
    import_point: str | None  # None: the device only produces
    export_point: str
    power_point: str
    power_sign: int  # +1: positive W is import (meters); -1: positive W is production (inverters, DER)


_INVERTER = EnergyPoints(None, "WH", "W", -1)
_METER = EnergyPoints("TotWhImp", "TotWhExp", "W", +1)
ENERGY = {
    **{m: _INVERTER for m in (101, 102, 103, 111, 112, 113)},
    **{m: _METER for m in (201, 202, 203, 204, 211, 212, 213, 214, 220)},
    701: EnergyPoints("TotWhAbs", "TotWhInj", "W", -1),
}


@cache
def layout(model_id: int) -> Layout:
    """The top-level points of a model (repeating groups are not needed for energy)."""
    group = sunspec_device.get_model_def(model_id)["group"]
    points, offset = {}, 0
    for p in group["points"]:
        size = int(p.get("size", SIZE.get(p["type"], 1)))
        points[p["name"]] = Point(p["name"], offset, size, p["type"], p.get("sf"))
        offset += size
    return Layout(model_id, group["name"], offset - 2, points)


def integer(regs: list[int], point: Point) -> int:
    value = 0
    for r in regs[point.offset : point.offset + point.size]:
        value = value << 16 | r
    if point.type.startswith("int") or point.type == "sunssf":
        bits = 16 * point.size
        value = value - (1 << bits) if value >> (bits - 1) else value
    return value


def float32(regs: list[int], point: Point) -> float:
    raw = struct.pack(">HH", *regs[point.offset : point.offset + 2])
    return struct.unpack(">f", raw)[0]


def shortest_float32(value: float) -> str:
    """The shortest decimal that is the same float32 (what the meter meant, not binary noise)."""
    packed = struct.pack(">f", value)
    for digits in range(6, 10):
        text = f"{value:.{digits}g}"
        if struct.pack(">f", float(text)) == packed:
            return text
    return repr(value)


def is_not_implemented(regs: list[int], point: Point) -> bool:
    if point.type == "float32":
        return math.isnan(float32(regs, point))
    raw = integer(regs, point) & ((1 << (16 * point.size)) - 1)
    return NOT_IMPLEMENTED.get(point.type) == raw


def encode(point: Point, value: int | float) -> list[int]:
    """Registers of one point's value (the simulator's side)."""
    if point.type == "float32":
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        return [hi, lo]
    value = int(value) & ((1 << (16 * point.size)) - 1)
    return [(value >> (16 * (point.size - 1 - i))) & 0xFFFF for i in range(point.size)]
