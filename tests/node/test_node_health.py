"""/healthz tells the truth: 200 with the chain, the deployment and the clock offset when all is
well; 503 with the reason when the node's clock is off against the chain's, and after the chain
was reset (the ledger's code gone), when the node also refuses deliveries with node_not_ready
(retryable) and its loop logs the reason once instead of a traceback every tick."""
from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient
from node_harness import deploy_settlement, wire

from node.api import create_app
from node.archive import open_archive
from node.chain import Chain
from node.peers import Peers
from node.settlement import SettlementNode
from rust_core.wire import Problem, RefusalCode

pytestmark = pytest.mark.chain
PERIOD = 60


def make_node(anvil, tmp_path, off_by: float = 0.0):
    """A node whose clock is `off_by` seconds ahead of the chain's. The shared anvil's time may
    already run ahead of the wall clock (earlier tests move it on), so the node's clock follows
    the chain's pending block time, not time.time()."""
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=10, n_operators=1, quorum=1, n_meters=1,
                            active_from=int(time.time()) // PERIOD - 1)
    pending = dep.w3.eth.get_block("pending")["timestamp"]
    chain_ahead = pending - time.time()
    archive = open_archive(f"sqlite:///{tmp_path / 'node.db'}")
    node = SettlementNode(Chain(dep.rpc_url, dep.registry, dep.ledger, dep.operator_keys[0]), archive, Peers(()),
                          grace_seconds=2.0, clock=lambda: time.time() + chain_ahead + off_by)
    return dep, node, archive


def test_health_is_200_with_chain_clock_and_cosigning(anvil, tmp_path):
    dep, node, archive = make_node(anvil, tmp_path)
    node.tick()
    with TestClient(create_app(node)) as client:
        r = client.get("/healthz")
    archive.close()
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok" and body["reasons"] == [], body
    assert body["chain"] == {"reachable": True, "chain_id": dep.w3.eth.chain_id, "ledger_code": True,
                             "registry_code": True}
    assert abs(body["clock_offset_s"]) < 2 and body["periods_waiting_quorum"] == []
    assert body["cosigning"] == {"final_periods": 0, "own_root": 0, "rate": None}


def test_a_clock_off_against_the_chain_is_503_and_in_metrics(anvil, tmp_path):
    _, node, archive = make_node(anvil, tmp_path, off_by=45)
    node.tick()
    with TestClient(create_app(node)) as client:
        r = client.get("/healthz")
        metrics = client.get("/metrics").text
    archive.close()
    assert r.status_code == 503 and r.json()["status"] == "degraded"
    # the chain's time is whole seconds, so the node sees its 45 s as 44.x to 45.x
    (why,) = [w for w in r.json()["reasons"] if w.startswith("clock offset")]
    assert 44.0 <= float(why.split()[2]) < 46.0 and "against the chain exceeds" in why, why
    assert "energy_settlement_node_healthy 0.0" in metrics
    assert "energy_settlement_node_clock_offset_seconds 4" in metrics  # 44.x .. 45.x


def test_after_a_chain_reset_the_node_refuses_readings_and_says_why(anvil, tmp_path, caplog):
    dep, node, archive = make_node(anvil, tmp_path)
    ts = int(time.time())
    m = dep.meters[0]
    entry = wire(dep, [(m.meter_id, ts // PERIOD, ts, 2_000_000, 10)], [m.key])[0]
    dep.w3.provider.make_request("anvil_reset", [])
    caplog.set_level(logging.INFO)
    for _ in range(5):
        node.tick()
    with TestClient(create_app(node)) as client:
        h = client.get("/healthz")
        r = client.post("/v1/readings", json={"readings": [entry]})
    archive.close()
    assert h.status_code == 503 and h.json()["ready"] is False
    assert any("no contract code at the ledger" in why for why in h.json()["reasons"]), h.json()
    problem = Problem.model_validate(r.json())
    assert r.status_code == 503 and problem.code == RefusalCode.NODE_NOT_READY and problem.code.retryable
    assert "no contract code" in problem.detail and r.headers["retry-after"]
    assert [rec.message for rec in caplog.records if "not ready" in rec.message] == [
        f"not ready: no contract code at the ledger {dep.ledger} or the registry (chain reset?)"]
    assert not any(rec.exc_info for rec in caplog.records)
