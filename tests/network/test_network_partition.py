"""A network partition, not a kill: three operators, each a Linux network namespace holding its
Clique validator and its settlement node, joined by veth links on a bridge (devnet/netns.py,
10.77.0.10-12). Operator 2's link is brought down while both sides keep running: its validator
seals the one block a lone signer of three may seal and then stops, the majority's validators
and nodes settle periods at quorum 2. When the link comes back, the majority's heavier chain
replaces the minority's block on validator 2, and every node ends with every period settled
exactly once, on every validator, with every reading in it.

The test stands in for the outside world (oracles, the observer) over a control link per
operator (10.77.10x.2) that is never cut, and sends traffic only to these addresses."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from clique_support import endpoint
from node_harness import ROOT, NodeProcess, deploy_settlement, expected_root, wait_http
from test_node_three_nodes import Feeder

from devnet.clique import CliqueNetwork
from devnet.netns import Operators, netns_permitted
from node.archive import BATCH_FINAL, open_archive
from node.chain import STATUS_FINAL

pytestmark = pytest.mark.network

PERIOD = 10
WINDOW = 3
METERS = 4
CONFIRMATIONS = 2
NODE_PORT = 8700
_why_not = netns_permitted()


class NamespacedNode(NodeProcess):
    """The settlement node of operator i, run inside the operator's namespace: it listens on the
    namespace's addresses, reaches its own validator at the namespace's control address and the
    other nodes at their hub addresses (cut with the link)."""

    def __init__(self, ops: Operators, i: int, workdir, dep, key: bytes) -> None:
        peers = [f"http://{ops.hub_address(j)}:{NODE_PORT}" for j in range(ops.n) if j != i]
        super().__init__(workdir, f"node{i}", dep, key, NODE_PORT, peers, grace=1.0, takeover=2.0)
        self.prefix = ops.exec_prefix(i)
        self.url = f"http://{ops.control_address(i)}:{NODE_PORT}"
        text = self.config.read_text().replace(f'listen = "127.0.0.1:{NODE_PORT}"', f'listen = "0.0.0.0:{NODE_PORT}"')
        self.config.write_text(text + f"[chain]\nconfirmations = {CONFIRMATIONS}\n")

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), NODE_HARNESS_PASSWORD="local")
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "node.cli", "run", "--config", str(self.config)],
            stdout=self.log.open("a"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
        wait_http(self.url + "/healthz", proc=self.proc)


def wait(cond, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (v := cond()):
            return v
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout} s")


def final(dep, period: int) -> bool:
    return dep.batch(period, dep.meters[0].group_id)[5] == STATUS_FINAL


@pytest.mark.skipif(_why_not is not None, reason=f"network namespaces unavailable: {_why_not}")
def test_a_partitioned_operator_is_reorganised_away_and_settlement_ends_consistent(tmp_path, monkeypatch):
    import test_node_three_nodes
    monkeypatch.setattr(test_node_three_nodes, "PERIOD", PERIOD)  # the Feeder's period length
    with contextlib.ExitStack() as stack:  # everything created is removed, in reverse, also on failure
        ops = Operators(3)
        stack.callback(ops.remove)
        ops.create()
        placement = [(ops.ns(i), ops.hub_address(i), ops.control_address(i)) for i in range(3)]
        net = CliqueNetwork.create(tmp_path / "clique", 3, period=1, placement=placement)
        stack.callback(net.stop_all)
        net.start_all()
        assert all(s.url.startswith("http://10.77.") for s in net.signers)

        dep = deploy_settlement(endpoint(net), period_seconds=PERIOD, window=WINDOW, n_operators=3, quorum=2,
                                n_meters=METERS)
        nodes = [NamespacedNode(ops, i, tmp_path, dataclasses.replace(dep, rpc_url=f"http://{ops.control_address(i)}:8545"),
                                dep.operator_keys[i]) for i in range(3)]
        for n in nodes:
            stack.callback(n.stop)
            n.start()
        feeder = Feeder(dep)
        w = [net.web3(i) for i in range(3)]

        def settles(p: int, timeout: float = 60.0) -> None:
            wait(lambda: final(dep, p), timeout, f"period {p} final")
            b = dep.batch(p, dep.meters[0].group_id)
            assert (b[0], b[1], b[2], b[3]) == (*expected_root(feeder.by_period, dep, p, feeder.sigs), METERS)

        settles(feeder.deliver(nodes))

        # -- cut operator 2 (validator and node) off the others -------------------------------
        # right after a block someone else sealed: a signer of three that sealed the head may
        # not seal the next block, and alone it would never seal again
        signer2 = net.signers[2].address.lower()
        h0 = w[0].eth.block_number
        wait(lambda: (h := w[0].eth.block_number) > h0 and net.sealer(0, h).lower() != signer2, 30,
             "a fresh block not sealed by validator 2")
        ops.cut(2)
        cut_at = min(w[i].eth.block_number for i in range(3))
        # the readings still reach every node (the oracles are outside the operators' network)
        during = [feeder.deliver(nodes)]
        # the lone signer seals at most one block past the cut, then cannot seal again
        minority_head = wait(lambda: (h := w[2].eth.block_number) > cut_at and h, 20, "validator 2 sealing alone")
        settles(during[0])  # the majority (2 of 3 signers, 2 of 3 operators) settles on
        during.append(feeder.deliver(nodes))
        settles(during[1])
        assert w[2].eth.block_number <= minority_head + 1, "a lone signer of three sealed a run of blocks"
        minority_head = w[2].eth.block_number
        minority_block = w[2].eth.get_block(minority_head)
        assert net.sealer(2, minority_head).lower() == net.signers[2].address.lower()
        assert w[0].eth.block_number >= minority_head + 5
        assert not final(dataclasses.replace(dep, w3=w[2]), during[0]), "validator 2 saw the majority's blocks"

        # -- heal: the minority's view is reorganised away ---------------------------------------
        ops.heal(2)
        net.heal()  # redial now rather than at the next static-peer retry

        def synced() -> bool:
            h = w[0].eth.block_number
            return w[2].eth.block_number >= h - 1 and w[2].eth.get_block(h - 1)["hash"] == w[0].eth.get_block(h - 1)["hash"]

        wait(synced, 90, "validator 2 on the majority's chain")
        assert w[2].eth.get_block(minority_head)["hash"] != minority_block["hash"]  # its block is gone
        assert net.sealer(2, minority_head).lower() != net.signers[2].address.lower()
        wait(lambda: all(httpx.get(n.url + "/healthz", timeout=5).status_code == 200 for n in nodes), 60,
             "every node ready")
        last = feeder.deliver(nodes)
        settles(last)
        periods = sorted(feeder.by_period)
        # every node has every period final, with the root the chain holds
        for n in nodes:
            wait(lambda n=n: all(_archive_final(n, dep, p) for p in periods), 60, f"{n.name} adopting every period")
        # exactly once, nothing rejected, the same on every validator
        wait(lambda: len({w[i].eth.get_block(w[0].eth.block_number - 2)["hash"] for i in range(3)}) == 1, 30,
             "one chain")
        for i in range(3):
            ledger = dataclasses.replace(dep, w3=w[i]).ledger_contract()
            finalized = [e.args.period for e in ledger.events.BatchFinalized().get_logs(from_block=0)]
            assert sorted(finalized) == periods, (i, finalized)
            assert ledger.events.BatchRejected().get_logs(from_block=0) == []
    assert all(not Path(f"/run/netns/{ops.ns(i)}").exists() for i in range(3))  # removed


def _archive_final(node: NamespacedNode, dep, period: int) -> bool:
    archive = open_archive(f"sqlite:///{node.db}")
    try:
        rec = archive.final_batch(period, dep.meters[0].group_id)
    finally:
        archive.close()
    if rec is None or rec.status != BATCH_FINAL:
        return False
    onchain = dep.batch(period, dep.meters[0].group_id)
    assert rec.root == bytes(onchain[0]), f"{node.name}: period {period} final with another root"
    return True
