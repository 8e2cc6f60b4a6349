"""Three settlement node processes on one anvil, fed over the delivery protocol with readings
signed by real meter keys: periods finalize with the root computed here independently, a
killed node does not stop a quorum that still holds and resumes from its archive, and a lying
node's batch is rejected by an honest node's fraud proof."""
from __future__ import annotations

import sqlite3
import time

import httpx
import pytest
from node_harness import Deployment, NodeProcess, deploy_grid, deploy_settlement, expected_root, wait_status, wire

from devnet.ports import free_port
from node.chain import contract_type

pytestmark = pytest.mark.chain

PERIOD = 8
WINDOW = 3
GRACE = 1.0
TAKEOVER = 1.5
STATUS_FINAL, STATUS_REJECTED = 2, 3


def start_nodes(tmp_path, dep: Deployment, grids: tuple[str, ...] = ()) -> list[NodeProcess]:
    ports = [free_port() for _ in dep.operator_keys]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    nodes = [
        NodeProcess(tmp_path, f"node{i}", dep, key, ports[i], [u for j, u in enumerate(urls) if j != i],
                    grace=GRACE, takeover=TAKEOVER, grids=grids)
        for i, key in enumerate(dep.operator_keys)
    ]
    for n in nodes:
        n.start()
    return nodes


class Feeder:
    """Delivers one reading per meter per period, as the oracles would, to every node."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.by_period: dict[int, list[tuple]] = {}
        self.sigs: dict[tuple, bytes] = {}
        self.registers = {m.meter_id: list(m.baseline) for m in dep.meters}

    def next_period(self) -> int:
        """Waits until at least 3 s remain in the current period and returns it."""
        while True:
            now = time.time()
            p = int(now) // PERIOD
            if (p + 1) * PERIOD - now >= 3.0 and p not in self.by_period and p >= self.dep.meters[0].active_from:
                return p
            time.sleep(0.2)

    def deliver(self, nodes: list[NodeProcess]) -> int:
        p = self.next_period()
        ts = int(time.time())
        readings = []
        for i, m in enumerate(self.dep.meters):
            self.registers[m.meter_id][0] += 1000 + 17 * i
            self.registers[m.meter_id][1] += 3 * i
            readings.append((m.meter_id, p, ts, *self.registers[m.meter_id]))
        body = wire(self.dep, readings, [m.key for m in self.dep.meters])
        for r, entry in zip(readings, body):
            self.sigs[r] = bytes.fromhex(entry["signature"][2:])
        self.by_period[p] = readings
        for n in nodes:
            resp = httpx.post(n.url + "/v1/readings", json={"readings": body}, timeout=10)
            assert resp.status_code == 200, resp.text
            assert resp.json()["accepted"] == list(range(len(body)))
        return p


def test_three_nodes_finalize_survive_a_crash_and_resume(anvil, tmp_path):
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=WINDOW, n_operators=3, quorum=2, n_meters=4)
    grid_address = deploy_grid(dep)
    grid = dep.w3.eth.contract(address=grid_address, abi=contract_type("Grid")["abi"])
    nodes = start_nodes(tmp_path, dep, grids=(grid_address,))
    feeder = Feeder(dep)
    try:
        p1 = feeder.deliver(nodes)
        p2 = feeder.deliver(nodes)
        for p in (p1, p2):
            b = wait_status(dep, p, STATUS_FINAL)
            assert (b[0], b[1], b[2], b[3]) == (*expected_root(feeder.by_period, dep, p, feeder.sigs), 4)
        # the cascade: the final periods are rolled up on the grid (withdrawn = the group's import)
        for p in (p1, p2):
            deadline = time.time() + 15
            while not grid.functions.exchange(p).call()[0] and time.time() < deadline:
                time.sleep(0.3)
            rollup = grid.functions.getRollup(p).call()
            assert rollup[-1] is True and rollup[1] == dep.batch(p, dep.meters[0].group_id)[1]

        # A crashed node: the other two still hold the quorum of 2.
        down = nodes[(p2 + 1) % 3]  # whichever; rotation and take-over must cover it
        down.kill()
        alive = [n for n in nodes if n is not down]
        p3 = feeder.deliver(alive)
        p4 = feeder.deliver(alive)
        for p in (p3, p4):
            b = wait_status(dep, p, STATUS_FINAL)
            assert b[0] == expected_root(feeder.by_period, dep, p, feeder.sigs)[0]

        # Restarted from its archive, it adopts what became final while it was down and builds
        # the next period from those registers: its own header equals the committed one.
        down.start()
        p5 = feeder.deliver(nodes)
        b = wait_status(dep, p5, STATUS_FINAL)
        assert b[0] == expected_root(feeder.by_period, dep, p5, feeder.sigs)[0]
        deadline = time.time() + 10
        while True:
            r = httpx.get(f"{down.url}/v1/batches/{p5}/0x{dep.meters[0].group_id.hex()}/signature")
            if r.status_code == 200 or time.time() > deadline:
                break
            time.sleep(0.3)
        assert r.status_code == 200 and r.json()["header"]["root"] == "0x" + b[0].hex()
        metrics = httpx.get(alive[0].url + "/metrics").text  # never restarted: counts all 5 periods
        assert "energy_settlement_node_batches_final_total" in metrics
        assert "\nenergy_settlement_node_readings_accepted_total 20.0" in metrics
    finally:
        for n in nodes:
            n.stop()


def test_lying_node_is_caught_by_a_fraud_proof(anvil, tmp_path):
    # Honest nodes co-sign only the root they computed themselves, so with a quorum of 2 of 3 a
    # single liar never gets its batch on chain. To show the fraud path end to end this chain
    # runs with quorum 1: the liar, when its turn in the rotation comes, submits alone, and an
    # honest node must catch it during the challenge window.
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=4, n_operators=3, quorum=1, n_meters=3)
    nodes = start_nodes(tmp_path, dep)
    ops = sorted(n.address for n in nodes)
    liar = nodes[0]
    feeder = Feeder(dep)
    try:
        while True:  # a period in which the liar is first in the rotation
            p = feeder.next_period()
            if (ops.index(liar.address) - p) % 3 == 0:
                break
            time.sleep(1.0)
        p = feeder.deliver(nodes)
        assert (ops.index(liar.address) - p) % 3 == 0
        victim = feeder.by_period[p][1]
        db = sqlite3.connect(liar.db)  # the liar's archive now holds an altered register
        with db:
            db.execute("UPDATE readings SET import_mwh = ? WHERE meter_id = ? AND ts = ?",
                       (victim[3] + 5_000_000, victim[0], victim[2]))
        db.close()

        b = wait_status(dep, p, STATUS_FINAL, timeout=60)
        assert b[0] == expected_root(feeder.by_period, dep, p, feeder.sigs)[0]
        ledger = dep.ledger_contract()
        rejected = ledger.events.BatchRejected().get_logs(from_block=0)
        assert len(rejected) == 1
        ev = rejected[0].args
        assert ev.period == p and ev.reason == ledger.functions.REASON_BAD_SIGNATURE().call()
        assert bytes.fromhex(ev.prover[2:]) in {n.address for n in nodes[1:]}
        assert ev.root != b[0]
    finally:
        for n in nodes:
            n.stop()
