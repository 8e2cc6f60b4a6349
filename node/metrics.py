"""Prometheus metrics of one node (served on /metrics); one registry per node so several nodes
can run in one process (tests, bench)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.readings_in = Counter("node_readings_received", "Readings received over the API", registry=r)
        self.readings_accepted = Counter("node_readings_accepted", "Readings verified and archived", registry=r)
        self.readings_duplicate = Counter("node_readings_duplicate", "Readings already archived", registry=r)
        self.readings_refused = Counter("node_readings_refused", "Readings refused", ["reason"], registry=r)
        self.batches_built = Counter("node_batches_built", "Batches built and signed", registry=r)
        self.batches_submitted = Counter("node_batches_submitted", "Batches this node submitted", registry=r)
        self.batches_finalized = Counter("node_batches_final", "Own batches seen final", registry=r)
        self.fraud_proofs = Counter("node_fraud_proofs", "Fraud proofs sent", ["kind"], registry=r)
        self.gas_used = Counter("node_gas_used", "Gas used by this node's transactions", ["tx"], registry=r)
        self.last_final_period = Gauge("node_last_final_period", "Latest period final on chain", registry=r)
        self.close_to_commit = Histogram(
            "node_close_to_commit_seconds", "Period close to batch committed", registry=r,
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300),
        )
