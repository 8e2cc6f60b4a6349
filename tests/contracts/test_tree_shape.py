"""Issue 11, items 1 and 2: a tree whose nodes contradict their positions (a leaf hash above
the leaf level, an inner node at it) or whose hashed words are wider than their types cannot
be opened by the per-leaf proofs, so a colluding quorum (3 of the 5 test operators) could hide
any fraud behind them. proveBadNodeKind, proveBadSum (full-word children) and
proveMalformedLeaf reject such batches; against honest batches they revert."""
import ape
import pytest
from eth_utils import keccak
from settlement_builders import (
    GROUP_A,
    GROUP_B,
    MeterSpec,
    SumTree,
    inner_preimage,
    leaf_struct,
    leaf_words,
    node_struct,
    parent_hash,
    ref,
)

BAD_KIND, BAD_WIDTH = 9, 10
PENDING, REJECTED = 1, 3
U64 = 2**64


def leaves_of(world, meters, period):
    return [world.leaf(m, period, 5000 + 10 * i, 100 * i) for i, m in enumerate(meters)]


def assert_rejected(world, tx, reason, period, group=GROUP_A):
    [ev] = tx.events
    assert ev.event_name == "BatchRejected" and ev.reason == reason
    assert world.batch(period, group).status == REJECTED


@pytest.fixture
def honest(world):
    """An honest pending batch of 4 leaves in group B (what strangers try the new rules on)."""
    meters = world.meters(4, group=GROUP_B, prefix="h")
    leaves = leaves_of(world, meters, world.period)
    tree = SumTree.from_leaves(leaves)
    world.submit(tree, world.period, GROUP_B)
    return tree


def test_leaf_hash_at_inner_level_is_rejected(world, ledger, stranger, honest):
    meters = world.meters(4)
    p = world.period
    leaves = leaves_of(world, meters, p)
    tree = SumTree.from_leaves(leaves)  # depth 2
    # the colluders put leaf 2's hash where the inner node over leaves 2 and 3 belongs, with 1 GWh
    forged = (leaves[2].hash(), 10**12, 0)
    tree.corrupt(1, 1, forged)
    world.submit(tree, p)
    # no leaf below it can be opened: its path does not reach the root, its parent has no children
    with ape.reverts(ledger.BadProof):
        ledger.proveBadLeafSum(p, GROUP_A, leaf_struct(leaves[2]), 2, node_struct(ref.leaf_node(leaves[2])),
                               tree.proof(2), sender=stranger)
    with ape.reverts(ledger.BadProof):
        ledger.proveBadSum(p, GROUP_A, 1, 1, forged, node_struct(tree.node(0, 2)), node_struct(tree.node(0, 3)),
                           tree.proof(1, 1), sender=stranger)
    tx = ledger.proveBadNodeKind(p, GROUP_A, 1, 1, forged, keccak(leaves[2].encoded()), tree.proof(1, 1),
                                 sender=stranger)
    assert_rejected(world, tx, BAD_KIND, p)

    # a stranger against the honest batch: inner nodes open as inner nodes, leaves as leaves
    with ape.reverts(ledger.NoFraud):
        ledger.proveBadNodeKind(p, GROUP_B, 1, 0, node_struct(honest.node(1, 0)),
                                inner_preimage(honest.node(0, 0), honest.node(0, 1)), honest.proof(0, 1),
                                sender=stranger)
    with ape.reverts(ledger.NoFraud):
        ledger.proveBadNodeKind(p, GROUP_B, 0, 1, node_struct(honest.node(0, 1)),
                                keccak(honest.leaves[1].encoded()), honest.proof(1), sender=stranger)
    with ape.reverts(ledger.BadProof):  # a preimage that is not the node's
        ledger.proveBadNodeKind(p, GROUP_B, 1, 0, node_struct(honest.node(1, 0)),
                                keccak(honest.leaves[0].encoded()), honest.proof(0, 1), sender=stranger)
    assert world.batch(p, GROUP_B).status == PENDING


def test_inner_node_at_leaf_level_is_rejected(world, ledger, stranger, honest):
    meters = world.meters(4)
    p = world.period
    leaves = leaves_of(world, meters, p)
    nodes = [ref.leaf_node(lf) for lf in leaves]
    # count 3: leaves 1 and 2 folded into one inner node at leaf position 1, plus leaf 3
    folded = (parent_hash(nodes[1], nodes[2]), nodes[1][1] + nodes[2][1], nodes[1][2] + nodes[2][2])
    tree = SumTree([nodes[0], folded, nodes[3]], 2, [leaves[0], leaves[1], leaves[3]])
    world.submit(tree, p, count=3)
    with ape.reverts(ledger.BadProof):
        ledger.proveBadLeafSum(p, GROUP_A, leaf_struct(leaves[1]), 1, node_struct(nodes[1]), tree.proof(1),
                               sender=stranger)
    with ape.reverts(ledger.BadEvidence):
        ledger.proveBadSum(p, GROUP_A, 0, 1, folded, node_struct(nodes[1]), node_struct(nodes[2]), tree.proof(1),
                           sender=stranger)
    tx = ledger.proveBadNodeKind(p, GROUP_A, 0, 1, folded, inner_preimage(nodes[1], nodes[2]), tree.proof(1),
                                 sender=stranger)
    assert_rejected(world, tx, BAD_KIND, p)


def test_single_leaf_counted_twice_is_rejected(world, ledger, stranger, honest):
    [m] = world.meters(1)
    p = world.period
    a = ref.leaf_node(world.leaf(m, p, 7000, 0))
    twice = (parent_hash(a, a), 2 * a[1], 2 * a[2])
    tree = SumTree([twice], 0, [None])
    world.submit(tree, p, count=1)
    assert world.batch(p).totalImportMwh == 2 * a[1]
    tx = ledger.proveBadNodeKind(p, GROUP_A, 0, 0, twice, inner_preimage(a, a), [], sender=stranger)
    assert_rejected(world, tx, BAD_KIND, p)
    # the honest batch's root (level 2) is an inner node: nothing to prove
    with ape.reverts(ledger.NoFraud):
        ledger.proveBadNodeKind(p, GROUP_B, 2, 0, node_struct(honest.root),
                                inner_preimage(honest.node(1, 0), honest.node(1, 1)), [], sender=stranger)


def test_sum_wider_than_uint64_is_rejected(world, ledger, stranger, honest):
    meters = world.meters(3)
    p = world.period
    ghost = MeterSpec("ghost-wide", GROUP_A, active_from=p - 10)  # never registered: the fraud to hide
    leaves = sorted(leaves_of(world, meters, p) + [world.leaf(ghost, p, 9000, 0)], key=lambda lf: lf.reading.meter_id)
    g = [lf.reading.meter_id for lf in leaves].index(ghost.meter_id)
    tree = SumTree.from_leaves(leaves)
    # the left half claims 2^64 more than it holds; the header totals wrap back to the honest ones
    h, i, e = tree.node(1, 0)
    tree.corrupt(1, 0, (h, i + U64, e))
    r = tree.root
    tree.corrupt(2, 0, (r[0], r[1] - U64, r[2]))
    world.submit(tree, p)
    other = 3 if g < 2 else 0  # a leaf under the other half: its path carries the wide sibling
    with ape.reverts():
        ledger.proveUnknownMeter(p, GROUP_A, leaf_struct(leaves[g]), g, tree.proof(g), sender=stranger)
    with ape.reverts(ledger.SumOverflow if other == 3 else ledger.BadProof):
        ledger.proveUnknownMeter(p, GROUP_A, leaf_struct(leaves[other]), other, tree.proof(other), sender=stranger)
    tx = ledger.proveBadSum(p, GROUP_A, 2, 0, node_struct(tree.root), tree.node(1, 0), node_struct(tree.node(1, 1)),
                            [], sender=stranger)
    assert_rejected(world, tx, BAD_WIDTH, p)

    # a stranger widening an honest child changes its hash
    h, i, e = honest.node(1, 0)
    with ape.reverts(ledger.BadProof):
        ledger.proveBadSum(p, GROUP_B, 2, 0, node_struct(honest.root), (h, i + U64, e),
                           node_struct(honest.node(1, 1)), [], sender=stranger)
    with ape.reverts(ledger.NoFraud):
        ledger.proveBadSum(p, GROUP_B, 2, 0, node_struct(honest.root), node_struct(honest.node(1, 0)),
                           node_struct(honest.node(1, 1)), [], sender=stranger)


@pytest.mark.parametrize("case", ["wide_register", "wide_v", "short_encoding"])
def test_malformed_leaf_is_rejected(world, ledger, stranger, honest, case):
    meters = world.meters(3)
    p = world.period
    leaves = leaves_of(world, meters, p)
    if case == "wide_register":  # delta 5000 as committed, but both registers 2^64 higher
        words = leaf_words(leaves[1], import_mwh=U64 + 5000 + 10, prev_import_mwh=U64)
    elif case == "wide_v":
        words = leaf_words(leaves[1], v=256 + leaves[1].signature[64])
    else:
        words = leaf_words(leaves[1])[:320]
    node = (keccak(keccak(words)), *ref.leaf_node(leaves[1])[1:])
    nodes = [ref.leaf_node(leaves[0]), node, ref.leaf_node(leaves[2])]
    tree = SumTree(nodes, 2, leaves)
    world.submit(tree, p, count=3)
    # no Leaf struct carries that encoding
    with ape.reverts(ledger.BadProof):
        ledger.proveBadLeafSum(p, GROUP_A, leaf_struct(leaves[1]), 1, node, tree.proof(1), sender=stranger)
    tx = ledger.proveMalformedLeaf(p, GROUP_A, 1, node, words, tree.proof(1), sender=stranger)
    assert_rejected(world, tx, BAD_WIDTH, p)

    # a stranger against an honest leaf: its encoding is well formed, another is not its hash
    with ape.reverts(ledger.NoFraud):
        ledger.proveMalformedLeaf(p, GROUP_B, 2, node_struct(honest.node(0, 2)), honest.leaves[2].encoded(),
                                  honest.proof(2), sender=stranger)
    with ape.reverts(ledger.BadProof):
        ledger.proveMalformedLeaf(p, GROUP_B, 2, node_struct(honest.node(0, 2)),
                                  leaf_words(honest.leaves[2], import_mwh=U64), honest.proof(2), sender=stranger)
    assert world.batch(p, GROUP_B).status == PENDING
