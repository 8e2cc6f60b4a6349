"""The registry as the node sees it: every meter point read from MeterRegistered events, its
active window shortened by MeterDecommissioned (which takes effect from a period not yet ended,
so one pass over new blocks keeps the view current)."""
from __future__ import annotations

import threading
from dataclasses import replace

from node.chain import Chain, Meter, with_rotation
from node.checkpoint import ScanCheckpoint


class RegistryView:
    def __init__(self, chain: Chain, checkpoint: ScanCheckpoint | None = None) -> None:
        self._chain = chain
        self._checkpoint = checkpoint or ScanCheckpoint(None)
        # resumed from the checkpoint: the meters read before it and the block after them
        self._meters: dict[bytes, Meter] = self._checkpoint.meters()
        self._registered_at: dict[bytes, int] = {}
        self._next_block = self._checkpoint.resume("registry", chain.first_block) if self._meters else chain.first_block
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            head = self._chain.block_number()
            if head < self._next_block:
                return
            new: dict[bytes, Meter] = {}
            for event, meter_id, what in self._chain.registry_changes(self._next_block, head):
                if event == "MeterRegistered":
                    m = what
                elif event == "MeterKeyRotated":
                    m = replace(self._meters[meter_id], key_changes=with_rotation(self._meters[meter_id].key_changes,
                                                                                 *what))
                else:  # MeterDecommissioned
                    m = replace(self._meters[meter_id], active_until=what)
                new[meter_id] = self._meters[meter_id] = m
            self._next_block = head + 1
            self._checkpoint.save("registry", self._next_block, new)

    def meter(self, meter_id: bytes) -> Meter | None:
        return self._meters.get(meter_id)

    def registered_at(self, meter_id: bytes) -> int:
        """Block timestamp of the meter's registration (0: none): a meter counts in a batch only
        if registered by its submission. Cached once set (a registration never changes)."""
        at = self._registered_at.get(meter_id)
        if at is None:
            at = self._chain.registry.functions.registeredAt(meter_id).call()
            if at:
                self._registered_at[meter_id] = at
        return at

    def lookup(self, meter_ids: list[bytes]) -> dict[bytes, Meter]:
        """The registered meters among `meter_ids`, refreshing once if any is unknown."""
        if any(m not in self._meters for m in meter_ids):
            self.refresh()
        return {m: self._meters[m] for m in meter_ids if m in self._meters}
