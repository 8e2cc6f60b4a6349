"""The deterministic batch of one period and balance group: each meter's latest reading of the
period, ascending by meter id, counting from the meter's leaf in the latest earlier final batch
(or its registry baseline, prevPeriod = activeFrom - 1); its Merkle-sum tree and header."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import rust_core

from node.archive import Archive
from node.registry import RegistryView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltBatch:
    header: tuple[int, bytes, bytes, int, int, int]  # (period, group, root, import, export, count)
    leaves: list[tuple]
    skipped: dict[bytes, str]  # meter id -> why its reading could not be settled


def build_batch(archive: Archive, registry: RegistryView, period: int, group_id: bytes) -> BuiltBatch | None:
    readings = archive.latest_readings(period, group_id)
    states = archive.meter_states([r[0] for r in readings])
    leaves, skipped = [], {}
    for meter_id, _, ts, imp, exp, sig in readings:
        meter = registry.meter(meter_id)
        if meter_id in states:
            prev = states[meter_id]
        else:
            prev = (meter.active_from - 1, meter.baseline_import, meter.baseline_export)
        if prev[0] >= period:
            skipped[meter_id] = f"register already final for period {prev[0]}"
        elif imp < prev[1] or exp < prev[2]:
            skipped[meter_id] = f"register regression against period {prev[0]}"
        else:
            leaves.append((meter_id, period, ts, imp, exp, *prev, sig))
    for m, why in skipped.items():
        log.error("period %d group %s: meter 0x%s left out: %s", period, group_id.hex()[:8], m.hex(), why)
    if not leaves:
        return None
    root = rust_core.MerkleSumTree(leaves).root
    return BuiltBatch((period, group_id, root[0], root[1], root[2], len(leaves)), leaves, skipped)
