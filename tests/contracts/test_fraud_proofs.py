"""Fraud proofs: each rule rejects a pending batch with a Merkle-sum proof; honest evidence,
bad proofs, closed windows and replays revert with the named error and change nothing."""
import ape
import pytest
from settlement_builders import GROUP_A, GROUP_B, SumTree, leaf_struct, node_struct, ref

(BAD_SIGNATURE, UNKNOWN_METER, BAD_PREVIOUS, OUT_OF_ORDER, BAD_SUM, BAD_LEAF_SUM, BAD_PADDING) = range(1, 8)
PENDING, FINAL, REJECTED = 1, 2, 3


def rejected(world, tx, reason, period=None, prover=None):
    period = world.period if period is None else period
    [ev] = tx.events
    assert ev.event_name == "BatchRejected" and ev.reason == reason and ev.period == period
    b = world.batch(period)
    assert b.status == REJECTED and ev.root == b.root
    # a fraud in the data bans the header; one judged against the registry does not (the same
    # content may be valid in another context: FraudProofs)
    assert world.ledger.headerRejected(header_hash(world, period, ev.groupId)) == (reason != UNKNOWN_METER)
    if prover is not None:
        assert ev.prover == prover.address
    return True


def header_hash(world, period, group):
    b = world.batch(period, group)
    return ref.BatchHeader(period, group, b.root, b.totalImportMwh, b.totalExportMwh, b.count, 0).content_hash()


def leaves_for(world, meters, period, overrides=None):
    overrides = overrides or {}
    out = []
    for i, m in enumerate(meters):
        kw = dict(overrides.get(i, {}))
        out.append(world.leaf(m, period, kw.pop("imp", 5000 + i), kw.pop("exp", 100 * i), None, **kw))
    return out


def prove_leaf(world, fn, tree, index, sender):
    return fn(world.period, tree.group, leaf_struct(tree.leaves[index]), index, tree.proof(index), sender=sender)


def submitted(world, leaves, group=GROUP_A, count=None):
    tree = SumTree.from_leaves(leaves, count=count)
    tree.group = group
    world.submit(tree, world.period, tree.group, count=count)
    return tree


def test_bad_signature(world, ledger, stranger):
    meters = world.meters(5)
    wrong_key = b"\x11" * 32
    tree = submitted(world, leaves_for(world, meters, world.period, {3: {"signer": wrong_key}}))
    with ape.reverts(ledger.NoFraud):
        prove_leaf(world, ledger.proveBadSignature, tree, 2, stranger)
    assert world.batch(world.period).status == PENDING
    tx = prove_leaf(world, ledger.proveBadSignature, tree, 3, stranger)
    assert rejected(world, tx, BAD_SIGNATURE, prover=stranger)


@pytest.mark.parametrize("case", ["unregistered", "other_group", "not_yet_active", "expired", "leaf_period",
                                  "timestamp"])
def test_unknown_meter(world, ledger, stranger, case):
    meters = world.meters(3)
    p = world.period
    if case == "unregistered":
        from settlement_builders import MeterSpec
        ghost = MeterSpec("ghost", meters[0].group, active_from=p - 10)  # never registered
        leaves = sorted(leaves_for(world, meters[:2], p) + [world.leaf(ghost, p, 9, 0)],
                        key=lambda lf: lf.reading.meter_id)
        bad = [lf.reading.meter_id for lf in leaves].index(ghost.meter_id)
    else:
        leaves, bad = leaves_for(world, meters, p), 1
        m = meters[1]
        if case == "other_group":
            m = world.register(type(m)("foreign", GROUP_B, active_from=p - 10))
        elif case == "not_yet_active":
            m = world.register(type(m)("future", m.group, active_from=p + 1))
        elif case == "expired":
            m = world.register(type(m)("retired", m.group, active_from=p - 10, active_until=p - 1))
        if case in ("other_group", "not_yet_active", "expired"):
            leaves[1] = world.leaf(m, p, 7000, 0, None)
            leaves.sort(key=lambda lf: lf.reading.meter_id)
            bad = [lf.reading.meter_id for lf in leaves].index(m.meter_id)
        elif case == "leaf_period":
            leaves[1] = world.leaf(m, p - 1, 7000, 0, None, timestamp=(p - 1) * 900 + 1)
        elif case == "timestamp":
            leaves[1] = world.leaf(m, p, 7000, 0, None, timestamp=(p + 1) * 900)
    tree = submitted(world, leaves)
    honest = 0 if bad != 0 else 2
    with ape.reverts(ledger.NoFraud):
        prove_leaf(world, ledger.proveUnknownMeter, tree, honest, stranger)
    tx = prove_leaf(world, ledger.proveUnknownMeter, tree, bad, stranger)
    assert rejected(world, tx, UNKNOWN_METER)


def test_out_of_order_and_duplicate(world, ledger, stranger):
    meters = world.meters(4)
    p = world.period
    leaves = leaves_for(world, meters, p)
    # swap two adjacent leaves: build the tree over the wrong order by hand
    swapped = [leaves[0], leaves[2], leaves[1], leaves[3]]
    tree = SumTree([ref.leaf_node(lf) for lf in swapped], 2, swapped)
    tree.group = meters[0].group
    world.submit(tree, p, tree.group)
    with ape.reverts(ledger.NoFraud):
        ledger.proveOutOfOrder(p, tree.group, leaf_struct(swapped[0]), 0, tree.proof(0), leaf_struct(swapped[1]),
                               tree.proof(1), sender=stranger)
    with ape.reverts(ledger.IndexOutOfRange):
        ledger.proveOutOfOrder(p, tree.group, leaf_struct(swapped[3]), 3, tree.proof(3), leaf_struct(swapped[3]),
                               tree.proof(3), sender=stranger)
    tx = ledger.proveOutOfOrder(p, tree.group, leaf_struct(swapped[1]), 1, tree.proof(1), leaf_struct(swapped[2]),
                                tree.proof(2), sender=stranger)
    assert rejected(world, tx, OUT_OF_ORDER)
    # the same meter twice in a corrected batch
    dup = [leaves[0], leaves[1], leaves[1]]
    tree2 = SumTree([ref.leaf_node(lf) for lf in dup], 2, dup)
    world.submit(tree2, p, tree.group, count=3)
    tx = ledger.proveOutOfOrder(p, tree.group, leaf_struct(dup[1]), 1, tree2.proof(1), leaf_struct(dup[2]),
                                tree2.proof(2), sender=stranger)
    assert rejected(world, tx, OUT_OF_ORDER)


def test_bad_inner_sum_and_header_totals(world, ledger, stranger):
    meters = world.meters(5)
    p = world.period
    group = meters[0].group
    tree = SumTree.from_leaves(leaves_for(world, meters, p))  # depth 3
    node = tree.node(1, 1)
    tree.corrupt(1, 1, (node[0], node[1] + 1, node[2]))
    world.submit(tree, p, group)
    left, right = tree.node(0, 2), tree.node(0, 3)
    # an honest node on the path proves nothing
    with ape.reverts(ledger.NoFraud):
        ledger.proveBadSum(p, group, 1, 0, node_struct(tree.node(1, 0)), node_struct(tree.node(0, 0)),
                           node_struct(tree.node(0, 1)), tree.proof(0, 1), sender=stranger)
    with ape.reverts(ledger.BadProof):  # children that are not the node's
        ledger.proveBadSum(p, group, 1, 1, node_struct(tree.node(1, 1)), node_struct(right), node_struct(left),
                           tree.proof(1, 1), sender=stranger)
    with ape.reverts(ledger.BadEvidence):
        ledger.proveBadSum(p, group, 0, 1, node_struct(tree.node(1, 1)), node_struct(left), node_struct(right),
                           tree.proof(1, 1), sender=stranger)
    tx = ledger.proveBadSum(p, group, 1, 1, node_struct(tree.node(1, 1)), node_struct(left), node_struct(right),
                            tree.proof(1, 1), sender=stranger)
    assert rejected(world, tx, BAD_SUM)

    # header totals that are not the root children's sum: the root is the node, at level = depth
    tree2 = SumTree.from_leaves(leaves_for(world, meters[:4], p))
    r = tree2.root
    tree2.corrupt(2, 0, (r[0], r[1], r[2] + 5))
    world.submit(tree2, p, group)
    tx = ledger.proveBadSum(p, group, 2, 0, node_struct(tree2.root), node_struct(tree2.node(1, 0)),
                            node_struct(tree2.node(1, 1)), [], sender=stranger)
    assert rejected(world, tx, BAD_SUM)


@pytest.mark.parametrize("case", ["delta", "backwards", "single_leaf"])
def test_bad_leaf_sum(world, ledger, stranger, case):
    meters = world.meters(3)
    p, group = world.period, meters[0].group
    leaves = leaves_for(world, meters, p)
    if case == "single_leaf":
        leaves = leaves[:1]
    if case == "backwards":  # register below its previous one
        m = meters[1]
        leaves[1] = ref.Leaf(leaves[1].reading, m.active_from - 1, 10**9, 0, leaves[1].signature)
        nodes = [ref.leaf_node(lf) if i != 1 else (leaves[1].hash(), 0, 0) for i, lf in enumerate(leaves)]
        tree = SumTree(nodes, 2, leaves)
        bad = 1
    else:
        tree = SumTree.from_leaves(leaves)
        bad = len(leaves) - 1
        n = tree.node(0, bad)
        tree.corrupt(0, bad, (n[0], n[1], n[2] + 1))
    world.submit(tree, p, group, count=len(leaves))
    with ape.reverts(ledger.NoFraud if case != "single_leaf" else ledger.BadProof):
        ledger.proveBadLeafSum(p, group, leaf_struct(leaves[0]), 0, node_struct(ref.leaf_node(leaves[0])),
                               tree.proof(0), sender=stranger)
    tx = ledger.proveBadLeafSum(p, group, leaf_struct(leaves[bad]), bad, node_struct(tree.node(0, bad)),
                                tree.proof(bad), sender=stranger)
    assert rejected(world, tx, BAD_LEAF_SUM)


def test_bad_padding(world, ledger, stranger):
    meters = world.meters(3)
    p, group = world.period, meters[0].group
    leaves = leaves_for(world, meters, p)
    tree = SumTree.from_leaves(leaves)  # 3 leaves, padding at 3
    world.submit(tree, p, group)
    with ape.reverts(ledger.NoFraud):
        ledger.proveBadPadding(p, group, 3, node_struct(tree.node(0, 3)), tree.proof(3), sender=stranger)
    with ape.reverts(ledger.NoFraud):
        ledger.proveBadPadding(p, group, 1, node_struct(tree.node(0, 1)), tree.proof(1), sender=stranger)
    with ape.reverts(ledger.BadProofShape):
        ledger.proveBadPadding(p, group, 4, node_struct(tree.node(0, 3)), tree.proof(3), sender=stranger)
    # a header that claims 3 leaves over a tree holding 4: position 3 is not empty
    tree4 = SumTree.from_leaves(leaves + [world.leaf(world.meters(1, prefix="x")[0], p, 1, 1)])
    world.submit(tree4, p + 1, group, count=3)
    tx = ledger.proveBadPadding(p + 1, group, 3, node_struct(tree4.node(0, 3)), tree4.proof(3), sender=stranger)
    assert rejected(world, tx, BAD_PADDING, period=p + 1)
    # a header that claims 4 leaves over a tree of 3: position 3 (< count) is empty
    tree3 = SumTree.from_leaves(leaves)
    world.submit(tree3, p + 2, group, count=4)
    tx = ledger.proveBadPadding(p + 2, group, 3, node_struct(tree3.node(0, 3)), tree3.proof(3), sender=stranger)
    assert rejected(world, tx, BAD_PADDING, period=p + 2)
    assert world.batch(p).status == PENDING


def test_bad_proofs_revert(world, ledger, stranger):
    meters = world.meters(4)
    p, group = world.period, meters[0].group
    tree = submitted(world, leaves_for(world, meters, p, {2: {"signer": b"\x22" * 32}}))
    lf = leaf_struct(tree.leaves[2])
    with ape.reverts(ledger.BadProof):  # right leaf, wrong index
        ledger.proveBadSignature(p, group, lf, 1, tree.proof(2), sender=stranger)
    with ape.reverts(ledger.BadProofShape):
        ledger.proveBadSignature(p, group, lf, 2, tree.proof(2)[:-1], sender=stranger)
    forged = list(lf)
    forged[3] += 1
    with ape.reverts(ledger.BadProof):
        ledger.proveBadSignature(p, group, tuple(forged), 2, tree.proof(2), sender=stranger)
    with ape.reverts(ledger.IndexOutOfRange, index=4, count=4):
        ledger.proveBadSignature(p, group, lf, 4, tree.proof(2), sender=stranger)
    with ape.reverts(ledger.BatchNotPending, status=0):
        ledger.proveBadSignature(p + 1, group, lf, 2, tree.proof(2), sender=stranger)
    assert world.batch(p).status == PENDING


def test_window_closes_and_replay(world, ledger, stranger):
    meters = world.meters(2)
    p, group = world.period, meters[0].group
    tree = submitted(world, leaves_for(world, meters, p, {0: {"signer": b"\x33" * 32}}))
    args = (p, group, leaf_struct(tree.leaves[0]), 0, tree.proof(0))
    world.pass_window()
    with ape.reverts(ledger.ChallengeWindowClosed):
        ledger.proveBadSignature(*args, sender=stranger)
    assert world.batch(p).status == PENDING


def test_rejected_batch_replaced_but_root_never_resubmitted(world, ledger, stranger):
    meters = world.meters(2)
    p, group = world.period, meters[0].group
    bad_tree = submitted(world, leaves_for(world, meters, p, {1: {"signer": b"\x44" * 32}}))
    args = (p, group, leaf_struct(bad_tree.leaves[1]), 1, bad_tree.proof(1))
    ledger.proveBadSignature(*args, sender=stranger)
    # replaying the proof (or any proof, or finalize) against the rejected batch changes nothing
    with ape.reverts(ledger.BatchNotPending, status=REJECTED):
        ledger.proveBadSignature(*args, sender=stranger)
    world.pass_window()
    with ape.reverts(ledger.BatchNotPending, status=REJECTED):
        world.finalize(p, group)
    with ape.reverts(ledger.HeaderRejected, contentHash=header_hash(world, p, group)):
        world.submit(bad_tree, p, group)
    good = submitted(world, leaves_for(world, meters, p))
    assert world.batch(p).status == PENDING and world.batch(p).root == good.root[0]
    world.pass_window()
    world.finalize(p, group)
    assert world.batch(p).status == FINAL


def test_header_mistake_bans_the_header_not_the_tree(world, ledger, stranger):
    """Issue 11 item 7: the ban is keyed by the header (period, group, root, totals, count)."""
    meters = world.meters(3)
    p, group = world.period, meters[0].group
    tree = SumTree.from_leaves(leaves_for(world, meters, p))
    world.submit(tree, p, group, count=4)  # an honest tree under a header that claims 4 leaves
    tx = ledger.proveBadPadding(p, group, 3, node_struct(tree.node(0, 3)), tree.proof(3), sender=stranger)
    assert rejected(world, tx, BAD_PADDING)
    with ape.reverts(ledger.HeaderRejected):  # the colluders' header again
        world.submit(tree, p, group, count=4)
    world.submit(tree, p, group)  # the corrected header over the same root
    with ape.reverts(ledger.NoFraud):
        ledger.proveBadPadding(p, group, 3, node_struct(tree.node(0, 3)), tree.proof(3), sender=stranger)
    world.pass_window()
    world.finalize(p, group)
    assert world.batch(p).status == FINAL and not ledger.headerRejected(header_hash(world, p, group))


def test_meter_registered_after_its_period_is_unknown_in_it(world, ledger, stranger, meter_operator):
    """Issue 11 item 7: registering a meter during the window does not make the batch valid."""
    from settlement_builders import MeterSpec
    meters = world.meters(2)
    p = world.period
    ghost = MeterSpec("registered-late", GROUP_A, active_from=p - 10)
    leaves = sorted(leaves_for(world, meters, p) + [world.leaf(ghost, p, 9000, 0)],
                    key=lambda lf: lf.reading.meter_id)
    tree = submitted(world, leaves)
    world.chain.pending_timestamp += 60
    world.register(ghost)  # a colluding meter operator registers it, backdated, within the window
    g = [lf.reading.meter_id for lf in leaves].index(ghost.meter_id)
    honest = 0 if g != 0 else 1  # registered long before period p closed
    with ape.reverts(ledger.NoFraud):
        prove_leaf(world, ledger.proveUnknownMeter, tree, honest, stranger)
    tx = prove_leaf(world, ledger.proveUnknownMeter, tree, g, stranger)
    assert rejected(world, tx, UNKNOWN_METER)
