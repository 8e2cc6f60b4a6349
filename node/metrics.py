"""Prometheus metrics of one node (served on /metrics); one registry per node so several nodes
can run in one process (tests, bench). Every name is in the project's namespace
(`energy_settlement_node_...`, never node_exporter's `node_`), and every label is bounded:
refusals by RefusalCode, fraud proofs by ledger function, gas by transaction kind."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rust_core.wire import RefusalCode

NAMESPACE = "energy_settlement"
SUBSYSTEM = "node"


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ns = {"namespace": NAMESPACE, "subsystem": SUBSYSTEM, "registry": self.registry}
        self.readings_in = Counter("readings_received", "Readings received over the API", **ns)
        self.readings_accepted = Counter("readings_accepted", "Readings verified and archived", **ns)
        self.readings_duplicate = Counter("readings_duplicate", "Readings already archived", **ns)
        self.readings_refused = Counter("readings_refused", "Readings refused, by refusal code", ["code"], **ns)
        for code in RefusalCode:  # every code a series from the start, and no other
            self.readings_refused.labels(code=code.value)
        self.batches_built = Counter("batches_built", "Batches built and signed", **ns)
        self.batches_submitted = Counter("batches_submitted", "Batches this node submitted", **ns)
        self.batches_finalized = Counter("batches_final", "Own batches seen final", **ns)
        self.fraud_proofs = Counter("fraud_proofs", "Fraud proofs sent, by PeriodLedger function", ["kind"], **ns)
        self.gas_used = Counter("gas_used", "Gas used by this node's transactions, by transaction", ["tx"], **ns)
        self.last_final_period = Gauge("last_final_period", "Latest period final on chain", **ns)
        self.close_to_commit = Histogram(
            "close_to_commit_seconds", "Period close to batch committed",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300), **ns,
        )
