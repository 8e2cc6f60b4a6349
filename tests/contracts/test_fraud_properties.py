"""Property: random valid batches finalize, and any single malformation of a random batch (a
corrupted leaf, sum, order, padding, node kind, width or count, at any position) is rejected
by the matching fraud proof, sent by a stranger against the colluders' (3-of-5) batch."""
import itertools

import ape
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from settlement_builders import (
    GROUP_A,
    MeterSpec,
    SumTree,
    inner_preimage,
    leaf_struct,
    leaf_words,
    make_leaf,
    node_struct,
    parent_hash,
    ref,
)

KINDS = ["none", "signature", "field", "leaf_sum", "inner_sum", "order", "padding", "previous", "kind", "width",
         "count"]
U64 = 2**64
_labels = itertools.count()

batches = st.fixed_dictionaries({
    "registers": st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)), min_size=1, max_size=9),
    "kind": st.sampled_from(KINDS),
    "pick": st.integers(0, 2**16),
})


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=batches)
def test_random_batches(chain, world, ledger, stranger, spec):
    with chain.isolate():
        run(world, ledger, stranger, spec)


def run(world, ledger, stranger, spec):
    p = world.period
    base = next(_labels)
    meters = sorted((MeterSpec(f"prop{base}-{i}", GROUP_A, active_from=p - 3, baseline_import=5)
                     for i in range(len(spec["registers"]))), key=lambda m: m.meter_id)
    for m in meters:
        world.register(m)
    leaves = [world.leaf(m, p, 5 + imp, exp) for m, (imp, exp) in zip(meters, spec["registers"])]
    n, kind, pick = len(leaves), spec["kind"], spec["pick"]
    k = pick % n
    tree = SumTree.from_leaves(leaves)
    depth = tree.depth
    if kind == "order" and n < 2 or kind == "inner_sum" and depth == 0 or kind == "padding" and n == 1 << depth:
        kind = "signature"
    count = n
    if kind == "kind":
        if depth == 0 or pick >> 8 & 1:  # an inner node over leaves k and its neighbour at leaf position k
            a, b = tree.node(0, k), ref.leaf_node(tree.leaves[(k + 1) % n])
            level, index, preimage = 0, k, inner_preimage(a, b)
            tree.corrupt(0, k, (parent_hash(a, b), a[1] + b[1], a[2] + b[2]))
        else:  # leaf k's hash in place of an inner node (its sums kept)
            level = 1 + pick % depth
            index = (pick >> 4) % (1 << (depth - level))
            preimage = keccak(tree.leaves[k].encoded())
            tree.corrupt(level, index, (tree.leaves[k].hash(), *tree.node(level, index)[1:]))
    elif kind == "width":
        if depth == 0 or pick >> 8 & 1:  # leaf k's registers hashed 2^64 wider, same delta
            lf = tree.leaves[k]
            words = leaf_words(lf, import_mwh=lf.reading.import_mwh + U64, prev_import_mwh=lf.prev_import_mwh + U64)
            tree.corrupt(0, k, (keccak(keccak(words)), *tree.node(0, k)[1:]))
        else:  # a left child's sum 2^64 wider, its parent's sum the honest one
            level = 1 + pick % depth
            index = (pick >> 4) % (1 << (depth - level))
            h, i, e = tree.node(level - 1, 2 * index)
            tree.corrupt(level - 1, 2 * index, (h, i + U64, e))
            h, i, e = tree.node(level, index)
            tree.corrupt(level, index, (h, i - U64, e))
    elif kind == "count":  # the header claims one leaf more or fewer than the tree holds
        count = n + 1 if n == 1 or pick >> 8 & 1 else n - 1
    if kind == "signature":
        tree.leaves[k] = make_leaf(world.domain, meters[k], p, 5 + spec["registers"][k][0], spec["registers"][k][1],
                                   p - 4, 5, 0, signer=b"\x77" * 32)
        tree.corrupt(0, k, ref.leaf_node(tree.leaves[k]))
    elif kind == "field":  # a signed field changed after signing
        old = tree.leaves[k]
        r = old.reading
        reading = ref.Reading(r.meter_id, r.period, r.timestamp, r.import_mwh + 1, r.export_mwh)
        tree.leaves[k] = ref.Leaf(reading, old.prev_period, old.prev_import_mwh, old.prev_export_mwh, old.signature)
        tree.corrupt(0, k, ref.leaf_node(tree.leaves[k]))
    elif kind == "previous":  # counts from another register than the baseline
        old = tree.leaves[k]
        tree.leaves[k] = ref.Leaf(old.reading, old.prev_period, 4, 0, old.signature)
        tree.corrupt(0, k, ref.leaf_node(tree.leaves[k]))
    elif kind == "leaf_sum":
        h, i, e = tree.node(0, k)
        tree.corrupt(0, k, (h, i, e + 1 + pick % 3))
    elif kind == "inner_sum":
        level = 1 + pick % depth
        index = (pick >> 4) % (1 << (depth - level))
        h, i, e = tree.node(level, index)
        tree.corrupt(level, index, (h, i + 1, e))
    elif kind == "order":
        j = k if k < n - 1 else k - 1
        tree.leaves[j], tree.leaves[j + 1] = tree.leaves[j + 1], tree.leaves[j]
        tree.corrupt(0, j, ref.leaf_node(tree.leaves[j]))
        tree.corrupt(0, j + 1, ref.leaf_node(tree.leaves[j + 1]))
    elif kind == "padding":
        index = n + pick % ((1 << depth) - n)
        tree.corrupt(0, index, (b"\x09" * 32, 0, 1))
    world.submit(tree, p, GROUP_A, count=count)

    if kind == "none":
        world.pass_window()
        world.finalize(p)
        assert world.batch(p).status == 2
        return
    args = (p, GROUP_A)
    if kind in ("signature", "field"):
        tx = ledger.proveBadSignature(*args, leaf_struct(tree.leaves[k]), k, tree.proof(k), sender=stranger)
    elif kind == "previous":
        lf = leaf_struct(tree.leaves[k])
        tx = ledger.proveBadPrevious(*args, lf, k, tree.proof(k), 0, GROUP_A, lf, k, tree.proof(k), sender=stranger)
    elif kind == "leaf_sum":
        tx = ledger.proveBadLeafSum(*args, leaf_struct(tree.leaves[k]), k, node_struct(tree.node(0, k)),
                                    tree.proof(k), sender=stranger)
    elif kind == "inner_sum":
        tx = ledger.proveBadSum(*args, level, index, node_struct(tree.node(level, index)),
                                node_struct(tree.node(level - 1, 2 * index)),
                                node_struct(tree.node(level - 1, 2 * index + 1)), tree.proof(index, level),
                                sender=stranger)
    elif kind == "order":
        tx = ledger.proveOutOfOrder(*args, leaf_struct(tree.leaves[j]), j, tree.proof(j),
                                    leaf_struct(tree.leaves[j + 1]), tree.proof(j + 1), sender=stranger)
    elif kind == "kind":
        tx = ledger.proveBadNodeKind(*args, level, index, node_struct(tree.node(level, index)), preimage,
                                     tree.proof(index, level), sender=stranger)
    elif kind == "width" and (depth == 0 or pick >> 8 & 1):
        tx = ledger.proveMalformedLeaf(*args, k, node_struct(tree.node(0, k)), words, tree.proof(k), sender=stranger)
    elif kind == "width":
        tx = ledger.proveBadSum(*args, level, index, node_struct(tree.node(level, index)),
                                tree.node(level - 1, 2 * index), node_struct(tree.node(level - 1, 2 * index + 1)),
                                tree.proof(index, level), sender=stranger)
    elif kind == "count":
        tx = prove_count(ledger, args, tree, n, count, stranger)
    else:
        tx = ledger.proveBadPadding(*args, index, node_struct(tree.node(0, index)), tree.proof(index),
                                    sender=stranger)
    assert world.batch(p).status == 3
    assert tx.events[0].event_name == "BatchRejected"
    # nothing else to prove against a rejected batch
    with ape.reverts(ledger.BatchNotPending):
        world.finalize(p)


def prove_count(ledger, args, tree, n, count, stranger):
    """A count that contradicts the tree: at the same depth a padding position is wrong; at
    another depth the tree's levels sit one off, so nodes have the wrong kind for their level."""
    d, claimed = tree.depth, ref.tree_depth(count)
    if claimed == d:
        at = min(n, count)  # the last leaf beyond count, or an empty position below it
        return ledger.proveBadPadding(*args, at, node_struct(tree.node(0, at)), tree.proof(at), sender=stranger)
    if claimed > d:  # the contract's level 1 is the leaf level: leaf 0 there is a leaf hash
        return ledger.proveBadNodeKind(*args, 1, 0, node_struct(tree.node(0, 0)), keccak(tree.leaves[0].encoded()),
                                       tree.proof(0), sender=stranger)
    # the contract's leaf level is the tree's level 1: its node 0 is an inner node
    return ledger.proveBadNodeKind(*args, 0, 0, node_struct(tree.node(1, 0)),
                                   inner_preimage(tree.node(0, 0), tree.node(0, 1)), tree.proof(0, 1), sender=stranger)
