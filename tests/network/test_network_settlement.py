"""Settlement on the 3-signer Clique network, each operator's node talking to its own validator,
quorum 2 of 3: with one validator killed the chain and the settlement go on; with two killed
the chain stops sealing and the settlement pauses, and when they return every period is settled
exactly once, with every reading in it. A node whose validator is down answers 503 (not ready)
and the delivery is offered to it again, as the oracles' outboxes do."""
from __future__ import annotations

import dataclasses
import time

import httpx
import pytest
from clique_support import endpoint
from node_harness import NodeProcess, deploy_settlement, expected_root, wire
from test_node_three_nodes import Feeder

from devnet.ports import free_port
from node.chain import STATUS_FINAL

pytestmark = pytest.mark.network

PERIOD = 10
WINDOW = 3
METERS = 4
CONFIRMATIONS = 2


def wait_final(dep, period: int, timeout: float = 60.0) -> tuple:
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = dep.batch(period, dep.meters[0].group_id)
        if b[5] == STATUS_FINAL:
            return b
        time.sleep(0.5)
    raise AssertionError(f"period {period} not final after {timeout} s: {dep.batch(period, dep.meters[0].group_id)}")


def offer(dep, feeder, node, period: int) -> None:
    """The period's delivery to a node whose validator is down: refused as not ready, or taken."""
    body = wire(dep, feeder.by_period[period], [m.key for m in dep.meters])
    assert all(feeder.sigs[r] == bytes.fromhex(e["signature"][2:]) for r, e in zip(feeder.by_period[period], body))
    r = httpx.post(node.url + "/v1/readings", json={"readings": body}, timeout=10)
    assert r.status_code in (200, 503), r.text
    assert r.status_code == 200 or r.json()["code"] == "node_not_ready"


def test_settlement_goes_on_with_one_validator_down_and_pauses_without_quorum(network, tmp_path, monkeypatch):
    import test_node_three_nodes
    monkeypatch.setattr(test_node_three_nodes, "PERIOD", PERIOD)  # the Feeder's period length
    dep = deploy_settlement(endpoint(network), period_seconds=PERIOD, window=WINDOW, n_operators=3, quorum=2,
                            n_meters=METERS)
    ports = [free_port() for _ in range(3)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    nodes = [  # operator i's node reads and writes through validator i
        NodeProcess(tmp_path, f"node{i}", dataclasses.replace(dep, rpc_url=network.urls[i]), dep.operator_keys[i],
                    ports[i], [u for j, u in enumerate(urls) if j != i], grace=1.0, takeover=2.0)
        for i in range(3)
    ]
    for n in nodes:  # a minority of one signer cannot undo two blocks
        n.config.write_text(n.config.read_text() + f"[chain]\nconfirmations = {CONFIRMATIONS}\n")
    feeder = Feeder(dep)
    settled: list[int] = []

    def settles(p: int) -> None:
        b = wait_final(dep, p)
        assert (b[0], b[1], b[2], b[3]) == (*expected_root(feeder.by_period, dep, p, feeder.sigs), METERS)
        settled.append(p)

    try:
        for n in nodes:
            n.start()
        settles(feeder.deliver(nodes))

        network.stop(2, kill=True)  # one validator gone: 2 of 3 still seal
        p = feeder.deliver(nodes[:2])
        offer(dep, feeder, nodes[2], p)
        settles(p)

        # two gone: the period's readings are in, then the chain stops (the last signer may seal
        # one more block, then nothing) before the period closes
        p = feeder.deliver(nodes[:2])
        offer(dep, feeder, nodes[2], p)
        network.stop(1, kill=True)
        head = network.head(0)
        time.sleep(PERIOD + 4)
        assert network.head(0) <= head + 1
        assert dep.batch(p, dep.meters[0].group_id)[5] != STATUS_FINAL

        network.start(1)
        network.start(2)
        settles(p)  # resumed: the period of the outage settles with all its readings
        deadline = time.time() + 30  # the restarted validators' nodes are ready again
        while not all(httpx.get(n.url + "/healthz", timeout=5).status_code == 200 for n in nodes):
            assert time.time() < deadline, "a node did not become ready again"
            time.sleep(0.5)
        settles(feeder.deliver(nodes))
    finally:
        for n in nodes:
            n.stop()

    # exactly once, and the same on every validator
    for i in range(3):
        ledger = dataclasses.replace(dep, w3=network.web3(i)).ledger_contract()
        finalized = [e.args.period for e in ledger.events.BatchFinalized().get_logs(from_block=0)]
        assert sorted(finalized) == settled
        assert ledger.events.BatchRejected().get_logs(from_block=0) == []
