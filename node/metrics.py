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
        self.readings_reconciled = Counter(_name("readings_reconciled"),
                                           "Signed readings fetched from peers before building a period", registry=r)
        self.batches_rebuilt = Counter(_name("batches_rebuilt"),
                                       "Own batches rebuilt from readings reconciled after the first build", registry=r)
        self.batches_yielded = Counter(_name("batches_yielded"),
                                       "Own batches given up for another root that reached quorum on chain", registry=r)
        self.periods_waiting_quorum = Gauge(_name("periods_waiting_quorum"),
                                            "Own batches built but not yet on chain", registry=r)
        self.clock_offset = Gauge(_name("clock_offset_seconds"), "Node clock minus the chain's block time",
                                  registry=r)
        self.cosigning_rate = Gauge(_name("cosigning_rate"),
                                    "Share of recent final batches whose root this node had built", registry=r)
        self.healthy = Gauge(_name("healthy"), "1 when /healthz answers 200, else 0", registry=r)
        self.close_to_commit = Histogram(_name("close_to_commit_seconds"), "Period close to batch committed",
                                         buckets=(0.5, 1, 2, 5, 10, 30, 60, 300), registry=r)
