"""Trees built by rust_core (the nodes' fast path) are accepted by the contracts: the root and
totals it commits settle, and each of its proofs verifies on chain."""
import ape
import pytest
from settlement_builders import SumTree, cosign, header_struct, leaf_struct, node_struct, ref

rust_core = pytest.importorskip("rust_core", reason="rust_core native module not built (make rust)")


def as_tuple(leaf: ref.Leaf) -> tuple:
    r = leaf.reading
    return (r.meter_id, r.period, r.timestamp, r.import_mwh, r.export_mwh, leaf.prev_period, leaf.prev_import_mwh,
            leaf.prev_export_mwh, leaf.signature)


@pytest.mark.parametrize("n", [1, 5, 8])
def test_rust_tree_settles_and_its_proofs_verify(world, ledger, stranger, n):
    meters = world.meters(n, prefix=f"rust{n}-")
    leaves = [world.leaf(m, world.period, 2000 + 13 * i, 7 * i) for i, m in enumerate(meters)]
    tree = rust_core.MerkleSumTree([as_tuple(lf) for lf in leaves])
    assert tuple(tree.root) == SumTree.from_leaves(leaves).root
    root_hash, imp, exp = tree.root
    h = ref.BatchHeader(world.period, meters[0].group, bytes(root_hash), imp, exp, tree.count, world.epoch)
    ledger.submitBatch(header_struct(h), cosign(world.domain, h, world.keys()), sender=world.operators[0])
    for i, lf in enumerate(leaves):
        proof = [node_struct(node) for node in tree.proof(i)]
        with ape.reverts(ledger.NoFraud):  # the proof verifies; the signature is good
            ledger.proveBadSignature(world.period, h.group_id, leaf_struct(lf), i, proof, sender=stranger)
    world.pass_window()
    world.finalize(world.period, h.group_id)
    assert world.batch(world.period, h.group_id).status == 2
