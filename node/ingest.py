"""Verifies a delivery of signed readings and archives the good ones. Each reading is judged
on its own: a refused one never costs the others of the same delivery."""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import rust_core
from node.archive import ARCHIVE_MAX, Archive
from node.chain import Meter
from node.metrics import NodeMetrics
from node.registry import RegistryView
from rust_core.wire import FIELD_CODES, DeliveryAnswer, Refusal, RefusalCode, Refused, SignedReading, parse_reading

log = logging.getLogger(__name__)


@dataclass
class _Outcome:
    accepted: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    rejected: list[Refusal] = field(default_factory=list)

    def refuse(self, index: int, code: RefusalCode, message: str) -> None:
        self.rejected.append(Refusal(index=index, code=code, message=message))

    def answer(self) -> DeliveryAnswer:
        return DeliveryAnswer(accepted=sorted(self.accepted), duplicates=sorted(self.duplicates),
                              rejected=sorted(self.rejected, key=lambda x: x.index))


def _archivable(r: SignedReading) -> SignedReading:
    """The archive keeps integers in signed 64-bit columns: the top half of uint64 is refused."""
    for name in ("period", "timestamp", "import_mwh", "export_mwh"):
        if getattr(r, name) > ARCHIVE_MAX:
            raise Refused(FIELD_CODES[name], f"{name}: {getattr(r, name)} exceeds {ARCHIVE_MAX}")
    return r


class PeriodGate:
    """Which (period, group) pairs are closed. Ingest checks and stores under the same lock the
    batch builder takes to close a period, so no reading slips in after its batch was read."""

    def __init__(self, period_seconds: int, grace_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.period_seconds = period_seconds
        self.grace_seconds = grace_seconds
        self.clock = clock
        self.lock = threading.Lock()
        self._closed: set[tuple[int, bytes]] = set()

    def closes_at(self, period: int) -> float:
        return (period + 1) * self.period_seconds + self.grace_seconds

    def is_closed(self, period: int, group_id: bytes) -> bool:
        return (period, group_id) in self._closed or self.clock() >= self.closes_at(period)

    def close(self, period: int, group_id: bytes) -> None:
        """Call with `lock` held."""
        self._closed.add((period, group_id))


class Ingestor:
    def __init__(self, archive: Archive, registry: RegistryView, domain_separator: bytes, gate: PeriodGate,
                 metrics: NodeMetrics, clock_skew_seconds: float = 30.0) -> None:
        self.archive = archive
        self.registry = registry
        self.domain = domain_separator
        self.gate = gate
        self.metrics = metrics
        self.skew = clock_skew_seconds
        # per open period: "accepted", "duplicate", "refused:<code>" counts of signed readings, logged at close
        self.period_stats: dict[int, Counter] = {}

    def deliver(self, entries: list) -> DeliveryAnswer:
        """Judges every entry on its own: each index ends in accepted, duplicates or rejected."""
        result = _Outcome()
        self.metrics.readings_in.inc(len(entries))
        parsed: list[tuple[int, SignedReading]] = []
        for i, entry in enumerate(entries):
            try:
                parsed.append((i, _archivable(parse_reading(entry))))
            except Refused as e:
                result.refuse(i, e.code, e.message)
        good, meters = self._verified(parsed, result)
        if good:
            with self.gate.lock:
                open_: list[tuple[int, SignedReading]] = []
                late: list[tuple[int, SignedReading]] = []
                for i, r in good:
                    closed = self.gate.is_closed(r.period, meters[r.meter_id].group_id)
                    (late if closed else open_).append((i, r))
                outcomes = self.archive.store_readings([(r, meters[r.meter_id].group_id) for _, r in open_])
            for (i, r), outcome in zip(open_, outcomes):
                if outcome is None:
                    result.accepted.append(i)
                elif outcome == "duplicate":
                    result.duplicates.append(i)
                else:
                    result.refuse(i, *outcome)
                self._count(r.period, "accepted" if outcome is None else
                            "duplicate" if outcome == "duplicate" else "refused:" + outcome[0].value)
            for i, r in late:
                if self.archive.has_reading(r.meter_id, r.timestamp, r.signature):
                    result.duplicates.append(i)
                else:
                    result.refuse(i, RefusalCode.PERIOD_CLOSED, f"replay or late: period {r.period} is closed "
                                                                f"(closed at {self.gate.closes_at(r.period):.0f})")
        answer = result.answer()
        self.metrics.readings_accepted.inc(len(answer.accepted))
        self.metrics.readings_duplicate.inc(len(answer.duplicates))
        for code, n in Counter(x.code for x in answer.rejected).items():
            self.metrics.readings_refused.labels(code=code.value).inc(n)
        return answer

    def reconcile(self, readings: list[SignedReading], period: int, group_id: bytes) -> int:
        """Verifies and archives a peer's signed readings of a closed period, like a delivery
        (the meters' signatures make that safe) but past the gate: the node calls it while it
        builds that period. Returns how many were new to this archive."""
        result = _Outcome()
        parsed = []
        for i, r in enumerate(readings):
            try:
                if r.period == period:
                    parsed.append((i, _archivable(r)))
            except Refused:
                pass
        good, meters = self._verified(parsed, result)
        good = [(i, r) for i, r in good if meters[r.meter_id].group_id == group_id]
        outcomes = self.archive.store_readings([(r, group_id) for _, r in good])
        new = sum(1 for o in outcomes if o is None or (o != "duplicate" and o[0] == RefusalCode.CONFLICTING_READING))
        if result.rejected:
            log.warning("period %d: %d reading(s) from a peer refused, first: %s: %s", period, len(result.rejected),
                        result.rejected[0].code.value, result.rejected[0].message)
        self.metrics.readings_reconciled.inc(new)
        return new

    def _verified(self, parsed: list[tuple[int, SignedReading]],
                  result: _Outcome) -> tuple[list[tuple[int, SignedReading]], dict[bytes, Meter]]:
        """The entries whose period, timestamp, meter and signature hold; the rest refused."""
        meters = self.registry.lookup(list({r.meter_id for _, r in parsed}))
        now = self.gate.clock()
        candidates: list[tuple[int, SignedReading]] = []
        P = self.gate.period_seconds
        for i, r in parsed:
            m = meters.get(r.meter_id)
            if r.timestamp // P != r.period:
                result.refuse(i, RefusalCode.WRONG_PERIOD,
                              f"timestamp {r.timestamp} lies in period {r.timestamp // P}, not {r.period}")
            elif r.timestamp > now + self.skew:
                result.refuse(i, RefusalCode.FUTURE_TIMESTAMP,
                              f"timestamp {r.timestamp} is in the future (node time {now:.0f}, skew {self.skew:g} s)")
            elif m is None:
                result.refuse(i, RefusalCode.UNKNOWN_METER, f"meter 0x{r.meter_id.hex()} is not registered")
            elif not m.active_from <= r.period <= m.active_until:
                result.refuse(i, RefusalCode.INACTIVE_METER, f"meter not active in period {r.period} "
                                                             f"(active {m.active_from}..{m.active_until})")
            else:
                candidates.append((i, r))
        if not candidates:
            return [], meters
        failures = dict(rust_core.verify_readings(
            self.domain,
            [r.reading for _, r in candidates],
            [r.signature for _, r in candidates],
            [meters[r.meter_id].key_at(r.period) for _, r in candidates],
        ))
        good = []
        for k, (i, r) in enumerate(candidates):
            if k in failures:
                result.refuse(i, RefusalCode.BAD_SIGNATURE, failures[k])
            else:
                good.append((i, r))
        return good, meters

    def _count(self, period: int, what: str) -> None:
        """Per-period counts, logged at close: only for signed readings of open periods, so the
        table never grows with what a client makes up."""
        self.period_stats.setdefault(period, Counter())[what] += 1

    def forget_stats_before(self, period: int) -> None:
        for p in [p for p in self.period_stats if p < period]:
            del self.period_stats[p]
