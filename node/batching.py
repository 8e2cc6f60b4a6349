"""The deterministic batch of one period and balance group: each meter's latest reading of the
period, ascending by meter id, counting from the meter's leaf in the latest earlier final batch
(or its registry baseline, prevPeriod = activeFrom - 1); its Merkle-sum tree and header."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import rust_core
from node.archive import Archive
from node.registry import RegistryView
from rust_core.wire import BatchHeader, Leaf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltBatch:
    period: int
    group_id: bytes
    root: tuple[bytes, int, int]  # the tree's root node: hash, import sum, export sum
    leaves: list[Leaf]
    skipped: dict[bytes, str]  # meter id -> why its reading could not be settled

    def header(self, epoch: int) -> BatchHeader:
        """The batch's header as the operator set of `epoch` signs it."""
        return BatchHeader.of_root(self.period, self.group_id, self.root, len(self.leaves), epoch)


def build_batch(archive: Archive, registry: RegistryView, period: int, group_id: bytes) -> BuiltBatch | None:
    readings = archive.latest_readings(period, group_id)
    states = archive.meter_states([r.meter_id for r, _ in readings])
    leaves: list[Leaf] = []
    skipped: dict[bytes, str] = {}
    for r, sig in readings:
        meter = registry.meter(r.meter_id)
        if meter is None:  # archived readings were checked against the registry: not expected
            skipped[r.meter_id] = "not registered"
            continue
        prev = states.get(r.meter_id) or meter.baseline
        if not meter.active_from <= period <= meter.active_until:  # decommissioned since it was accepted
            skipped[r.meter_id] = f"not active in period {period} (active {meter.active_from}..{meter.active_until})"
        elif prev.period >= period:
            skipped[r.meter_id] = f"register already final for period {prev.period}"
        elif r.import_mwh < prev.import_mwh or r.export_mwh < prev.export_mwh:
            skipped[r.meter_id] = f"register regression against period {prev.period}"
        else:
            leaves.append(Leaf.settle(r, prev, sig))
    for m, why in skipped.items():
        log.error("period %d group %s: meter 0x%s left out: %s", period, group_id.hex()[:8], m.hex(), why)
    if not leaves:
        return None
    root = rust_core.MerkleSumTree(leaves).root
    return BuiltBatch(period, group_id, tuple(root), leaves, skipped)
