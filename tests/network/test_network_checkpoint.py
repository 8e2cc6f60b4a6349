"""The node's event scans start at the deployment's first block, and after a restart at its own
persisted checkpoint (node.checkpoint.ScanCheckpoint, rows of the archive, SQLite or
PostgreSQL), never past the block confirmation-depth deep, so a registration in the last
`confirmations` blocks before the stop is read after the restart, and never past a batch still
pending, so a restarted node reads its submission again. Every eth_getLogs range the node asks a
real anvil for is recorded by a web3 middleware."""
from __future__ import annotations

import time

import pytest
from eth_account import Account
from node_harness import deploy_settlement
from web3.middleware import Web3Middleware

import rust_core
from node.archive import open_archive
from node.chain import STATUS_PENDING, Chain, ChainOptions
from node.checkpoint import ScanCheckpoint
from node.peers import Peers
from node.settlement import SettlementNode
from rust_core.wire import meter_id
from scripts._deployment import MeterRow, register
from scripts._processes import Anvil

CONFIRMATIONS = 2


@pytest.fixture
def anvil():
    a = Anvil()
    a.w3.provider.make_request("anvil_mine", [hex(30)])  # the deployment is not at block 0 or 1
    yield a
    a.stop()


def recorded_chain(dep, key: bytes, ranges: list[tuple[int, int]]) -> Chain:
    chain = Chain(dep.rpc_url, dep.registry, dep.ledger, key, ChainOptions(confirmations=CONFIRMATIONS),
                  chain_id=dep.deployment.chain_id, first_block=dep.deployment.first_block)

    class RecordGetLogs(Web3Middleware):
        def wrap_make_request(self, make_request):
            def middleware(method, params):
                if method == "eth_getLogs":
                    ranges.append((int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)))
                return make_request(method, params)
            return middleware

    chain.w3.middleware_onion.add(RecordGetLogs, "record_get_logs")
    return chain


def node(dep, archive_url: str, ranges) -> SettlementNode:
    """Operator 0's node; its checkpoint is kept in its archive (the default)."""
    return SettlementNode(recorded_chain(dep, dep.operator_keys[0], ranges), open_archive(archive_url), Peers(()))


def saved_checkpoint(dep, archive_url: str) -> ScanCheckpoint:
    archive = open_archive(archive_url)
    try:
        return ScanCheckpoint(archive, Chain(dep.rpc_url, dep.registry, dep.ledger, dep.operator_keys[0],
                                             first_block=dep.deployment.first_block).deployment_key)
    finally:
        archive.close()


def mine(dep, n: int) -> None:
    dep.w3.provider.make_request("anvil_mine", [hex(n)])


def new_meter(dep, i: int) -> bytes:
    row = MeterRow(f"sml:0b{i:010x}", Account.create().address, "prosumer", dep.group, dep.meters[0].active_from, 0, 0)
    register(dep.admin, dep.deployment, [row])
    return meter_id("sml", f"0b{i:010x}")


def test_a_restarted_node_resumes_its_scans_from_its_checkpoint(anvil, archive_url):
    dep = deploy_settlement(anvil, period_seconds=3600, window=60, n_operators=1, quorum=1, n_meters=2)
    first = dep.deployment.first_block
    assert first > 30
    mine(dep, CONFIRMATIONS)
    ranges: list[tuple[int, int]] = []
    a = node(dep, archive_url, ranges)
    a.tick()
    assert ranges and min(f for f, _ in ranges) == first  # from the deployment, not from block 0
    assert max(t for _, t in ranges) == dep.w3.eth.block_number - CONFIRMATIONS  # never above the safe block
    assert {m.meter_id for m in dep.meters} <= set(a.registry._meters)

    mine(dep, 10)
    a.tick()
    late = new_meter(dep, 1)  # registered just before the stop: not yet confirmations deep
    a.tick()
    head_at_stop = dep.w3.eth.block_number
    assert a.registry.meter(late) is None
    a.stop()
    a.archive.close()
    saved = saved_checkpoint(dep, archive_url)
    for scan in ("registry", "ledger", "availability"):
        assert first < saved.resume(scan, first) <= head_at_stop - CONFIRMATIONS + 1, scan

    while_down = new_meter(dep, 2)
    mine(dep, 5)
    ranges.clear()
    b = node(dep, archive_url, ranges)  # restart: same archive, same checkpoint
    b.tick()
    assert ranges, "the restarted node did not scan"
    assert min(f for f, _ in ranges) >= min(saved.resume(s, first) for s in ("registry", "ledger", "availability"))
    assert all(f > first for f, _ in ranges)  # resumed, not from the deployment again
    # it still sees everything: the meters read before the stop, the late one and the new one
    assert {m.meter_id for m in dep.meters} | {late, while_down} <= set(b.registry._meters)
    # each scan asks once per tick for its events: the registry (registered, key rotated,
    # decommissioned) and the ledger (submitted, finalized, rejected) in one request each, the
    # availability scan one per event kind (5)
    assert len(ranges) == 1 + 1 + 5
    b.stop()
    b.archive.close()


def submit_foreign_batch(dep, period: int) -> int:
    """A batch of `period` that this node did not build (signed by operator 1, quorum 1): the
    node must check it, so its business stays open. Returns the submission's block."""
    meters = sorted(dep.meters, key=lambda m: m.meter_id)
    readings = [(m.meter_id, period, period * dep.period_seconds + 1, m.baseline[0] + 1_000, m.baseline[1])
                for m in meters]
    sigs = rust_core.sign_readings(dep.domain, readings, [m.key for m in meters])
    leaves = [(*r, m.active_from - 1, *m.baseline, s) for r, m, s in zip(readings, meters, sigs)]
    root = rust_core.MerkleSumTree(leaves).root
    chain = Chain(dep.rpc_url, dep.registry, dep.ledger, dep.operator_keys[1])
    header = (period, dep.meters[0].group_id, root[0], root[1], root[2], len(leaves), chain.operator_set().epoch)
    res = chain.submit_batch(header, [chain.signer.sign_digest(rust_core.batch_digest(dep.domain, header))])
    assert chain.get_batch(period, header[1]).status == STATUS_PENDING
    return dep.w3.eth.get_transaction_receipt(res.tx_hash)["blockNumber"]


def test_a_pending_batch_holds_the_ledger_checkpoint_back_across_a_restart(anvil, archive_url):
    period_seconds = 3600
    now_p = int(time.time()) // period_seconds
    dep = deploy_settlement(anvil, period_seconds=period_seconds, window=600, n_operators=2, quorum=1, n_meters=2,
                            active_from=now_p - 1)
    ranges: list[tuple[int, int]] = []
    a = node(dep, archive_url, ranges)
    a.tick()
    submitted_in = submit_foreign_batch(dep, now_p - 1)
    mine(dep, CONFIRMATIONS + 20)
    a.tick()
    a.tick()  # read, and the next scans start above it
    assert a._pending[dep.meters[0].group_id] == {now_p - 1}
    assert a._next_block > submitted_in + 20
    a.stop()
    a.archive.close()
    # the ledger scan resumes at the submission, the registry's after what it read
    saved = saved_checkpoint(dep, archive_url)
    assert saved.resume("ledger", 0) == submitted_in
    assert saved.resume("registry", 0) > submitted_in + 20

    ranges.clear()
    b = node(dep, archive_url, ranges)
    b.tick()
    assert b._pending[dep.meters[0].group_id] == {now_p - 1}  # read again after the restart
    assert min(f for f, _ in ranges) == submitted_in
    b.stop()
    b.archive.close()


def test_an_archive_reused_for_another_deployment_resumes_nothing_of_the_old_one(anvil, archive_url):
    dep = deploy_settlement(anvil, period_seconds=3600, window=600, n_operators=1, quorum=1, n_meters=1)
    mine(dep, CONFIRMATIONS + 5)
    ranges: list[tuple[int, int]] = []
    a = node(dep, archive_url, ranges)
    a.tick()
    a.stop()
    a.archive.close()
    assert saved_checkpoint(dep, archive_url).resume("ledger", 0) > dep.deployment.first_block

    other = deploy_settlement(anvil, period_seconds=3600, window=600, n_operators=1, quorum=1, n_meters=1)
    mine(other, CONFIRMATIONS)
    ranges.clear()
    b = node(other, archive_url, ranges)
    b.tick()
    assert min(f for f, _ in ranges) == other.deployment.first_block
    assert set(b.registry._meters) == {m.meter_id for m in other.meters}  # none of the old deployment's
    b.stop()
    b.archive.close()
