"""Issue 14's end-to-end day: three settlement node processes and a fourth, synced but not an
operator yet, on one anvil. A household's meter is exchanged in the middle of the settled day,
the new meter's gateway key is rotated later, then an operator leaves and the fourth joins (one
epoch, quorum 3 of 3, so nothing settles without the newcomer's signature). Every period
settles, a reading signed with the replaced key is refused, the audit of an archive passes, and
the point's energy over the day equals the sum of both meters' deltas."""
from __future__ import annotations

import secrets
import time

import httpx
import pytest
from eth_account import Account
from node_harness import Deployment, NodeProcess, deploy_settlement, wait_status, wire
from web3 import Web3

from devnet.ports import free_port
from node.chain import contract_type
from rust_core.wire import RefusalCode, meter_id
from scripts._audit import audit, export_archive, read_chain, read_export, submission_signers
from scripts._processes import dev_key

pytestmark = pytest.mark.chain

PERIOD = 8
WINDOW = 3
STATUS_FINAL = 2


class Household:
    """The metered households: each active meter's signing key and registers (cumulative mWh)."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.keys = {m.meter_id: m.key for m in dep.meters}
        self.registers = {m.meter_id: list(m.baseline) for m in dep.meters}
        self.delivered: dict[int, list[tuple]] = {}
        self.delta: dict[bytes, int] = {}  # import delta per meter over the day

    def period_with_time_left(self) -> int:
        """The current period once at least 3 s of it remain (and none was delivered in it)."""
        while True:
            now = time.time()
            p = int(now) // PERIOD
            if (p + 1) * PERIOD - now >= 3.0 and p not in self.delivered:
                return p
            time.sleep(0.2)

    def deliver(self, nodes: list[NodeProcess], meters: list[bytes]) -> int:
        """One reading per meter of `meters` in the current period, to every node, all accepted."""
        p = self.period_with_time_left()
        ts = int(time.time())
        readings = []
        for i, m in enumerate(sorted(meters)):
            self.registers[m][0] += 1000 + 111 * i
            self.delta[m] = self.delta.get(m, 0) + 1000 + 111 * i
            readings.append((m, p, ts, *self.registers[m]))
        body = wire(self.dep, readings, [self.keys[r[0]] for r in readings])
        for n in nodes:
            resp = httpx.post(n.url + "/v1/readings", json={"readings": body}, timeout=10)
            assert resp.status_code == 200 and resp.json()["accepted"] == list(range(len(body))), (n.name, resp.text)
        self.delivered[p] = readings
        return p


def next_period() -> int:
    """The period after the current one (by the wall clock, which anvil's next block follows; the
    latest block may be older)."""
    return int(time.time()) // PERIOD + 1


def test_a_day_with_an_exchange_a_rotation_and_an_operator_change_settles_and_audits(anvil, tmp_path):
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=WINDOW, n_operators=3, quorum=2, n_meters=3)
    joiner_key = dev_key(4)
    ports = [free_port() for _ in range(4)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    nodes = [NodeProcess(tmp_path, f"node{i}", dep, key, ports[i], [u for j, u in enumerate(urls) if j != i],
                         grace=1.0, takeover=1.5)
             for i, key in enumerate([*dep.operator_keys, joiner_key])]
    for n in nodes:
        n.start()
    household = Household(dep)
    old = dep.meters[0].meter_id
    others = [m.meter_id for m in dep.meters[1:]]
    try:
        periods = [household.deliver(nodes, [old, *others])]

        # the exchange: from the next period the point is served by a new meter counting from zero
        new, new_key = meter_id("sml", "0a01ffff0001"), secrets.token_bytes(32)
        exchange = next_period()
        dep.admin.transact("MeterRegistry", dep.registry, "exchangeMeter", old, new,
                           Account.from_key(new_key).address, exchange, 0, 0)
        household.keys[new], household.registers[new] = new_key, [0, 0]
        while household.period_with_time_left() < exchange:
            time.sleep(0.5)
        periods.append(household.deliver(nodes, [old, new, *others]))  # the old meter's final reading too
        assert periods[-1] == exchange
        periods.append(household.deliver(nodes, [new, *others]))

        # the new meter's gateway key is replaced from the next period on
        rotated_key = secrets.token_bytes(32)
        rotation = next_period()
        dep.admin.transact("MeterRegistry", dep.registry, "rotateKey", new, Account.from_key(rotated_key).address,
                           rotation)
        while household.period_with_time_left() < rotation:
            time.sleep(0.5)
        stale = wire(dep, [(new, rotation, int(time.time()), household.registers[new][0] + 1, 0)], [new_key])
        answer = httpx.post(nodes[1].url + "/v1/readings", json={"readings": stale}, timeout=10).json()
        assert [r["code"] for r in answer["rejected"]] == [RefusalCode.BAD_SIGNATURE.value]  # the replaced key
        household.keys[new] = rotated_key
        periods.append(household.deliver(nodes, [new, *others]))

        # operator 0 leaves and the synced fourth node's operator joins, in one epoch of 3 of 3
        registry = dep.w3.eth.contract(address=dep.registry, abi=contract_type("MeterRegistry")["abi"])
        epoch = registry.functions.operatorEpoch().call()
        leaver, joiner = (Web3.to_checksum_address("0x" + n.address.hex()) for n in (nodes[0], nodes[3]))
        dep.admin.transact("MeterRegistry", dep.registry, "changeOperators", [joiner], [leaver], 3)
        assert registry.functions.operatorSet().call()[0] == epoch + 1
        for _ in range(2):
            periods.append(household.deliver(nodes, [new, *others]))

        for p in periods:
            wait_status(dep, p, STATUS_FINAL, timeout=60)
        ledger = dep.ledger_contract()
        submitted = {e.args.period: e for e in ledger.events.BatchSubmitted().get_logs(from_block=0)}
        assert {submitted[p].args.epoch for p in periods[-2:]} == {epoch + 1}  # signed by the new set
        assert set(submission_signers(dep.w3, ledger, submitted[periods[-1]].transactionHash, dep.domain)) == {
            n.address for n in nodes[1:]}
        path = f"/v1/batches/{periods[-1]}/0x{dep.meters[0].group_id.hex()}/signature"
        for stale_epoch in (epoch, epoch + 2):  # a node signs under the epoch in force only
            r = httpx.get(nodes[1].url + path, params={"epoch": stale_epoch}, timeout=10)
            assert r.status_code == 409 and f"({epoch + 1})" in r.json()["detail"], r.text
        assert httpx.get(nodes[1].url + path, timeout=10).json()["header"]["epoch"] == epoch + 1

        # the audit of one node's archive: every root, signature (by its period's key) and register chain
        export_archive(f"sqlite:///{nodes[1].db}", tmp_path / "export.jsonl")
        result = audit(read_chain(dep.w3, dep.deployment), read_export(tmp_path / "export.jsonl"))
        assert result.ok, result.failures
        day = household.delta[old] + household.delta[new]
        assert result.point_energy[old][0] == day  # no kWh lost at the swap, none counted twice
        for m in others:
            assert result.point_energy[m][0] == household.delta[m]
    finally:
        for n in nodes:
            n.stop()
