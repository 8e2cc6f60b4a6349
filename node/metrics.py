"""Prometheus metrics of one node (served on /metrics); one registry per node so several nodes
can run in one process (tests, bench). Every name is in the project's namespace
(`energy_settlement_node_...`, never node_exporter's `node_`), and every label is bounded:
refusals by RefusalCode, fraud proofs by ledger function, gas by transaction kind."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rust_core.wire import RefusalCode

NAMESPACE = "energy_settlement_node"


def _name(metric: str) -> str:
    return f"{NAMESPACE}_{metric}"


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.readings_in = Counter(_name("readings_received"), "Readings received over the API", registry=r)
        self.readings_accepted = Counter(_name("readings_accepted"), "Readings verified and archived", registry=r)
        self.readings_duplicate = Counter(_name("readings_duplicate"), "Readings already archived", registry=r)
        self.readings_refused = Counter(_name("readings_refused"), "Readings refused, by refusal code", ["code"],
                                        registry=r)
        for code in RefusalCode:  # every code a series from the start, and no other
            self.readings_refused.labels(code=code.value)
        self.batches_built = Counter(_name("batches_built"), "Batches built and signed", registry=r)
        self.batches_submitted = Counter(_name("batches_submitted"), "Batches this node submitted", registry=r)
        self.batches_finalized = Counter(_name("batches_final"), "Own batches seen final", registry=r)
        self.fraud_proofs = Counter(_name("fraud_proofs"), "Fraud proofs sent, by PeriodLedger function", ["kind"],
                                    registry=r)
        self.gas_used = Counter(_name("gas_used"), "Gas used by this node's transactions, by transaction", ["tx"],
                                registry=r)
        self.last_final_period = Gauge(_name("last_final_period"), "Latest period final on chain", registry=r)
        self.close_to_commit = Histogram(_name("close_to_commit_seconds"), "Period close to batch committed",
                                         buckets=(0.5, 1, 2, 5, 10, 30, 60, 300), registry=r)
