"""Where each of the node's event scans resumes after a restart, kept in the node's archive
(SQLite or PostgreSQL alike, rows of its `meta` table).

A scan stores the first block it has not fully dealt with: never past head - confirmations
(what it has read), and never past an event whose business is still open (a batch submitted but
not yet final or rejected), so a restarted node reads that event again instead of skipping it.
The registry's scan stores the meters it has read with it (a registration never changes), one
row each and written once, so it resumes instead of re-reading from the deployment block.
Without an archive (tests, read-only tools) nothing is kept: every scan starts at the
deployment's first block."""
from __future__ import annotations

import json
import threading
from dataclasses import asdict
from typing import Protocol

from node.chain import Meter

_SCAN = "scan:"    # scan:<deployment>:<name> -> first block not dealt with
_METER = "meter:"  # meter:<deployment>:<id hex> -> the registration, as read from the chain


class CheckpointStore(Protocol):  # node.archive.Archive
    def checkpoint_rows(self, prefixes: tuple[str, ...]) -> dict[str, str]: ...

    def save_checkpoint_rows(self, rows: dict[str, str]) -> None: ...


class ScanCheckpoint:
    def __init__(self, store: CheckpointStore | None, deployment: str = "") -> None:
        """`deployment`: node.chain.Chain.deployment_key; an archive reused for another
        deployment resumes nothing of the old one's."""
        self._store = store
        self._lock = threading.Lock()
        self._scan_key, self._meter_key = f"{_SCAN}{deployment}:", f"{_METER}{deployment}:"
        rows = store.checkpoint_rows((self._scan_key, self._meter_key)) if store is not None else {}
        self._scans = {k.removeprefix(self._scan_key): int(v) for k, v in rows.items() if k.startswith(self._scan_key)}
        self._meters = {bytes.fromhex(k.removeprefix(self._meter_key)): _meter(v)
                        for k, v in rows.items() if k.startswith(self._meter_key)}

    def resume(self, scan: str, first_block: int) -> int:
        return max(self._scans.get(scan, 0), first_block)

    def meters(self) -> dict[bytes, Meter]:
        return dict(self._meters)

    def save(self, scan: str, block: int, meters: dict[bytes, Meter] | None = None) -> None:
        """The scan's block and the meters it read with it, in one transaction: a crash keeps
        both or neither."""
        with self._lock:
            rows = {}
            if self._scans.get(scan) != block:
                rows[self._scan_key + scan] = str(block)
            new = {m: v for m, v in (meters or {}).items() if self._meters.get(m) != v}  # new or decommissioned
            rows |= {self._meter_key + m.hex(): json.dumps({**asdict(v), "key": v.key.hex(), "group_id": v.group_id.hex(),
                                                            "key_changes": [(p, k.hex()) for p, k in v.key_changes]})
                     for m, v in new.items()}
            if rows and self._store is not None:
                self._store.save_checkpoint_rows(rows)
            self._scans[scan] = block
            self._meters |= new


def _meter(row: str) -> Meter:
    m = json.loads(row)
    return Meter(**{**m, "key": bytes.fromhex(m["key"]), "group_id": bytes.fromhex(m["group_id"]),
                    "key_changes": tuple((p, bytes.fromhex(k)) for p, k in m.get("key_changes", ()))})
