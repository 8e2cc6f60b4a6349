"""find_fraud against batches committed on a real ledger: each kind of lie is named with the
proof the ledger accepts (the batch ends rejected), and an honest batch yields no proof."""
from __future__ import annotations

import secrets
import time

import pytest
from eth_abi import encode
from eth_utils import keccak
from node_harness import deploy_settlement
from web3 import Web3

import rust_core
from node.archive import BATCH_BUILT, BATCH_FINAL, BatchRecord, open_archive
from node.chain import STATUS_REJECTED, Chain
from node.fraud import CommittedTree, FraudProof, find_fraud, find_tree_fraud, sum_tree
from node.registry import RegistryView
from rust_core.wire import Leaf, SumNode

pytestmark = pytest.mark.chain
PERIOD = 10
WINDOW = 100


@pytest.fixture
def world(anvil, tmp_path):
    now_p = int(time.time()) // PERIOD
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=WINDOW, n_operators=1, quorum=1, n_meters=3,
                            active_from=now_p - 10)
    chain = Chain(dep.rpc_url, dep.registry, dep.ledger, dep.operator_keys[0])
    archive = open_archive(f"sqlite:///{tmp_path / 'a.db'}")
    registry = RegistryView(chain)
    registry.refresh()
    yield dep, chain, archive, registry, now_p
    archive.close()


def leaf(dep, i: int, period: int, imp: int, prev: tuple, key: bytes | None = None, meter_id: bytes | None = None):
    m = dep.meters[i]
    mid = meter_id or m.meter_id
    r = (mid, period, period * PERIOD + 3, imp, m.baseline[1])  # export register stands still
    sig = rust_core.sign_readings(dep.domain, [r], [key or m.key])[0]
    return (*r, *prev, sig)


def commit(chain: Chain, period: int, group: bytes, leaves: list[tuple]) -> tuple:
    root = sum_tree(leaves).root
    header = (period, group, root[0], root[1], root[2], len(leaves), chain.operator_set().epoch)
    sig = chain.signer.sign_digest(rust_core.batch_digest(chain.domain_separator, header))
    chain.submit_batch(header, [sig])
    return header


def baseline(dep, i: int) -> tuple:
    return (dep.meters[i].active_from - 1, *dep.meters[i].baseline)


def test_each_lie_is_proven_and_an_honest_batch_is_not(world):
    dep, chain, archive, registry, now_p = world
    group = dep.meters[0].group_id
    by_id = sorted(range(3), key=lambda i: dep.meters[i].meter_id)
    a, b, c = by_id  # meters in ascending id order

    # Period A final with meters a and b (not c), as the node keeps it.
    pa = now_p - 8
    final_leaves = [leaf(dep, a, pa, 2_000_000, baseline(dep, a)), leaf(dep, b, pa, 2_000_000, baseline(dep, b))]
    h = commit(chain, pa, group, final_leaves)
    dep.w3.provider.make_request("evm_increaseTime", [WINDOW + 1])
    chain.finalize(pa, group)
    archive.save_batch(BatchRecord(*h[:6], own=False, status=BATCH_BUILT, tx_hash=None, gas_used=None),
                       final_leaves)
    archive.set_batch_status(pa, group, h[2], BATCH_FINAL)

    pb = now_p - 6
    def after_a(i: int) -> tuple:
        return (pa, 2_000_000, dep.meters[i].baseline[1])

    honest = [leaf(dep, a, pb, 2_100_000, after_a(a)), leaf(dep, b, pb, 2_100_000, after_a(b)),
              leaf(dep, c, pb, 2_100_000, baseline(dep, c))]
    lies = {
        "proveOutOfOrder": [honest[1], honest[0], honest[2]],
        "proveUnknownMeter": [*honest[:2], leaf(dep, c, pb, 2_100_000, baseline(dep, c), key=secrets.token_bytes(32),
                                                meter_id=b"\xff" * 32)],
        "proveBadSignature": [honest[0], leaf(dep, b, pb, 2_100_000, after_a(b), key=secrets.token_bytes(32)), honest[2]],
        "proveBadPrevious": [leaf(dep, a, pb, 2_100_000, baseline(dep, a)), *honest[1:]],
        "proveMissingPrevious": [*honest[:2], leaf(dep, c, pb, 2_100_000, (pa, *dep.meters[c].baseline))],
    }
    for function, leaves in lies.items():
        commit(chain, pb, group, leaves)
        verdict = find_fraud(leaves, chain.get_batch(pb, group), pb, group, registry, archive, chain.domain_separator,
                             PERIOD)
        assert isinstance(verdict, FraudProof) and verdict.function == function, (function, verdict)
        chain.prove(verdict.function, *verdict.args)
        assert chain.get_batch(pb, group).status == STATUS_REJECTED, function

    commit(chain, pb, group, honest)
    verdict = find_fraud(honest, chain.get_batch(pb, group), pb, group, registry, archive, chain.domain_separator,
                         PERIOD)
    assert verdict == "no provable fraud in the leaves"
    assert find_fraud(honest[:2], chain.get_batch(pb, group), pb, group, registry, archive,
                      chain.domain_separator, PERIOD) == "leaves do not rebuild the committed root"


def committed_tree(leaves: list[tuple]) -> CommittedTree:
    """The honest tree of `leaves` node by node, with every leaf's encoding."""
    native = sum_tree(leaves)
    levels = [[SumNode._make(native.node(lvl, i)) for i in range(1 << (native.depth - lvl))]
              for lvl in range(native.depth + 1)]
    return CommittedTree(levels, {i: leaf_encoding(lf) for i, lf in enumerate(leaves)}, {})


def leaf_encoding(lf: tuple) -> bytes:
    words = list(Leaf._make(lf).struct())
    return encode(["bytes32"] + ["uint256"] * 7 + ["bytes32", "bytes32", "uint256"], words)


def corrupt(tree: CommittedTree, level: int, index: int, node: SumNode) -> None:
    """Replaces one committed node and rehashes its ancestors from the committed children."""
    tree.levels[level][index] = node
    for lvl in range(level + 1, len(tree.levels)):
        index >>= 1
        left, right = tree.levels[lvl - 1][2 * index], tree.levels[lvl - 1][2 * index + 1]
        tree.levels[lvl][index] = SumNode(inner_hash(left, right), left[1] + right[1], left[2] + right[2])


def inner_preimage(left, right) -> bytes:
    return encode(["bytes32", "uint256", "uint256", "bytes32", "uint256", "uint256"], [*left, *right])


def inner_hash(left, right) -> bytes:
    return keccak(inner_preimage(left, right))


def test_whole_committed_trees_are_checked_and_each_malformation_proven(world):
    """Node kind, width, padding and sums of a peer's whole tree (issue 11 items 1 and 2), and a
    meter registered during the window (item 7): each yields the proof the ledger accepts."""
    dep, chain, archive, registry, now_p = world
    group = dep.meters[0].group_id
    p = now_p - 8
    honest = sorted((leaf(dep, i, p, 2_000_000 + i, baseline(dep, i)) for i in range(3)), key=lambda lf: lf[0])
    U64 = 2**64

    def kind_up(t):  # leaf 0's hash one level up, with the sums of its node
        n = t.levels[1][0]
        t.preimages[(1, 0)] = keccak(t.encodings[0])
        corrupt(t, 1, 0, SumNode(keccak(t.preimages[(1, 0)]), n.import_mwh, n.export_mwh))

    def kind_down(t):  # an inner node over leaves 0 and 1 at leaf position 0
        a, b = t.levels[0][0], t.levels[0][1]
        t.preimages[(0, 0)] = inner_preimage(a, b)
        corrupt(t, 0, 0, SumNode(inner_hash(a, b), a[1] + b[1], a[2] + b[2]))

    def malformed(t):  # leaf 1 hashed with both import registers 2^64 wider (same delta)
        t.encodings[1] = leaf_encoding_wide(honest[1])
        corrupt(t, 0, 1, SumNode(keccak(keccak(t.encodings[1])), *t.levels[0][1][1:]))

    def wide(t):  # a child's sum 2^64 wider, its parent's the honest one
        h, i, e = t.levels[0][0]
        corrupt(t, 0, 0, SumNode(h, i + U64, e))
        h, i, e = t.levels[1][0]
        corrupt(t, 1, 0, SumNode(h, i - U64, e))

    cases = {
        "proveBadNodeKind up": kind_up,
        "proveBadNodeKind down": kind_down,
        "proveMalformedLeaf": malformed,
        "proveBadSum wide": wide,
        "proveBadSum": lambda t: corrupt(t, 1, 0, t.levels[1][0]._replace(import_mwh=t.levels[1][0].import_mwh + 1)),
        "proveBadPadding": lambda t: corrupt(t, 0, 3, SumNode(b"\x09" * 32, 0, 1)),
        "proveBadLeafSum": lambda t: corrupt(t, 0, 1, t.levels[0][1]._replace(export_mwh=t.levels[0][1].export_mwh + 1)),
    }
    for name, mutate in cases.items():
        t = committed_tree(honest)
        mutate(t)
        root = t.levels[-1][0]
        header = (p, group, root.hash, root.import_mwh, root.export_mwh, 3, chain.operator_set().epoch)
        chain.submit_batch(header, [chain.signer.sign_digest(rust_core.batch_digest(chain.domain_separator, header))])
        verdict = find_tree_fraud(t, chain.get_batch(p, group), p, group, registry, archive, chain.domain_separator,
                                  PERIOD)
        assert isinstance(verdict, FraudProof) and verdict.function == name.split()[0], (name, verdict)
        chain.prove(verdict.function, *verdict.args)
        assert chain.get_batch(p, group).status == STATUS_REJECTED, name

    # a meter registered only after the batch's submission does not count in it
    late_key = secrets.token_bytes(32)
    late_id = b"\xfe" * 32
    r = (late_id, p, p * PERIOD + 3, 7_000, 0)
    late = (*r, p - 1, 0, 0, rust_core.sign_readings(dep.domain, [r], [late_key])[0])
    with_late = sorted([*honest, late], key=lambda lf: lf[0])
    commit(chain, p, group, with_late)
    dep.w3.provider.make_request("evm_increaseTime", [2])  # registered in a later block than the batch
    dep.admin.transact("MeterRegistry", dep.registry, "registerMeter", late_id,
                       Web3.to_checksum_address(rust_core.address_of(late_key)), 2, group, p, 2**64 - 1, 0, 0)
    registry.refresh()
    verdict = find_tree_fraud(committed_tree(with_late), chain.get_batch(p, group), p, group, registry, archive,
                              chain.domain_separator, PERIOD)
    assert isinstance(verdict, FraudProof) and verdict.function == "proveUnknownMeter", verdict
    chain.prove(verdict.function, *verdict.args)
    assert chain.get_batch(p, group).status == STATUS_REJECTED

    commit(chain, p, group, honest)
    assert find_tree_fraud(committed_tree(honest), chain.get_batch(p, group), p, group, registry, archive,
                           chain.domain_separator, PERIOD) == "no provable fraud in the leaves"


def leaf_encoding_wide(lf: tuple) -> bytes:
    """Leaf words with importMwh and prevImportMwh 2^64 wider: the same delta, a malformed leaf."""
    words = list(Leaf._make(lf).struct())
    words[3] += 2**64
    words[6] += 2**64
    return encode(["bytes32"] + ["uint256"] * 7 + ["bytes32", "bytes32", "uint256"], words)
