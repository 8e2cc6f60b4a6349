"""The node's event scans start at the deployment's first block, and after a restart at its own
persisted checkpoint (node.chain.ScanCheckpoint, a file next to the archive), never past the
block confirmation-depth deep, so a registration in the last `confirmations` blocks before the
stop is read after the restart. Every eth_getLogs range the node asks a real anvil for is
recorded by a web3 middleware."""
from __future__ import annotations

import pytest
from eth_account import Account
from node_harness import deploy_settlement
from web3.middleware import Web3Middleware

from node.archive import open_archive
from node.chain import Chain, ChainOptions, ScanCheckpoint
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


def node(dep, tmp_path, ranges) -> SettlementNode:
    archive = open_archive(f"sqlite:///{tmp_path}/node.db")
    return SettlementNode(recorded_chain(dep, dep.operator_keys[0], ranges), archive, Peers(()),
                          checkpoint=ScanCheckpoint.next_to(f"sqlite:///{tmp_path}/node.db"))


def mine(dep, n: int) -> None:
    dep.w3.provider.make_request("anvil_mine", [hex(n)])


def new_meter(dep, i: int) -> bytes:
    row = MeterRow(f"sml:0b{i:010x}", Account.create().address, "prosumer", dep.group, dep.meters[0].active_from, 0, 0)
    register(dep.admin, dep.deployment, [row])
    return meter_id("sml", f"0b{i:010x}")


def test_a_restarted_node_resumes_its_scans_from_its_checkpoint(anvil, tmp_path):
    dep = deploy_settlement(anvil, period_seconds=3600, window=60, n_operators=1, quorum=1, n_meters=2)
    first = dep.deployment.first_block
    assert first > 30
    mine(dep, CONFIRMATIONS)
    ranges: list[tuple[int, int]] = []
    a = node(dep, tmp_path, ranges)
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
    saved = ScanCheckpoint.next_to(f"sqlite:///{tmp_path}/node.db")
    for scan in ("registry", "ledger", "availability"):
        assert first < saved.resume(scan, first) <= head_at_stop - CONFIRMATIONS + 1, scan

    while_down = new_meter(dep, 2)
    mine(dep, 5)
    ranges.clear()
    b = node(dep, tmp_path, ranges)  # restart: same archive, same checkpoint
    b.tick()
    assert ranges, "the restarted node did not scan"
    assert min(f for f, _ in ranges) >= min(saved.resume(s, first) for s in ("registry", "ledger", "availability"))
    assert all(f > first for f, _ in ranges)  # resumed, not from the deployment again
    # it still sees everything: the meters read before the stop, the late one and the new one
    assert {m.meter_id for m in dep.meters} | {late, while_down} <= set(b.registry._meters)
    # each scan asks once per tick for its events (3 scans: registry 1, ledger 3, availability 5 event kinds)
    assert len(ranges) == 1 + 3 + 5
    b.stop()
    b.archive.close()
