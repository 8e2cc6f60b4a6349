"""proveBadPrevious: a leaf must count from the same meter's leaf in the latest earlier final
batch, or from the registry baseline (prevPeriod = activeFrom - 1) before any."""
import ape
import pytest
from settlement_builders import GROUP_A, SumTree, leaf_struct, make_leaf

BAD_PREVIOUS, PENDING, REJECTED = 3, 1, 3


@pytest.fixture
def history(world):
    """Meters with baseline (3 kWh import); period p settled from the baseline and final."""
    meters = world.meters(3, baseline_import=3000)
    p = world.period
    first = [world.leaf(m, p, 5000 + i, 0) for i, m in enumerate(meters)]
    first_tree = world.settle(first, p)
    return meters, p, first, first_tree


def batch_with(world, period, leaves):
    tree = SumTree.from_leaves(leaves)
    world.submit(tree, period)
    return tree


def prove(world, tree, period, index, prev_period, prev_tree, prev_index, sender, prev_group=GROUP_A):
    return world.ledger.proveBadPrevious(
        period, GROUP_A, leaf_struct(tree.leaves[index]), index, tree.proof(index), prev_period, prev_group,
        leaf_struct(prev_tree.leaves[prev_index]), prev_index, prev_tree.proof(prev_index), sender=sender)


def custom_leaf(world, meter, period, imp, prev_period, prev_imp):
    return make_leaf(world.domain, meter, period, imp, 0, prev_period, prev_imp, 0)


def test_honest_chain_proves_nothing(world, ledger, history, stranger):
    meters, p, first, first_tree = history
    second = [world.leaf(m, p + 1, 6000 + i, 0, prev=first[i]) for i, m in enumerate(meters)]
    tree = batch_with(world, p + 1, second)
    for i in range(3):
        with ape.reverts(ledger.NoFraud):
            prove(world, tree, p + 1, i, p, first_tree, i, stranger)
    assert world.batch(p + 1).status == PENDING


def test_jump_against_previous_final_leaf(world, ledger, history, stranger):
    meters, p, first, first_tree = history
    second = [world.leaf(m, p + 1, 6000 + i, 0, prev=first[i]) for i, m in enumerate(meters)]
    second[1] = custom_leaf(world, meters[1], p + 1, 6001, p, 4000)  # claims 4000, final says 5001
    tree = batch_with(world, p + 1, second)
    with ape.reverts(ledger.BadEvidence, what="other meter"):
        prove(world, tree, p + 1, 1, p, first_tree, 0, stranger)
    tx = prove(world, tree, p + 1, 1, p, first_tree, 1, stranger)
    assert tx.events[0].event_name == "BatchRejected" and tx.events[0].reason == BAD_PREVIOUS


def test_skipping_a_later_final_leaf(world, ledger, history, stranger):
    meters, p, first, first_tree = history
    # the leaf counts from the baseline although period p holds a final leaf of the meter
    second = [world.leaf(m, p + 1, 6000 + i, 0, prev=first[i]) for i, m in enumerate(meters)]
    second[2] = world.leaf(meters[2], p + 1, 6002, 0, None)
    tree = batch_with(world, p + 1, second)
    tx = prove(world, tree, p + 1, 2, p, first_tree, 2, stranger)
    assert tx.events[0].reason == BAD_PREVIOUS and world.batch(p + 1).status == REJECTED


@pytest.mark.parametrize("case", ["baseline_mismatch", "before_baseline", "not_earlier", "prev_not_final"])
def test_self_evident_previous_faults(world, ledger, history, stranger, case):
    meters, p, first, first_tree = history
    m = meters[0]
    q = p + 2
    if case == "baseline_mismatch":
        # a fresh meter whose first leaf does not count from its registered baseline
        m = world.meters(1, prefix="fresh", baseline_import=3000)[0]
        bad = custom_leaf(world, m, q, 9000, m.active_from - 1, 2999)
    elif case == "before_baseline":
        bad = custom_leaf(world, m, q, 9000, m.active_from - 2, 3000)
    elif case == "not_earlier":
        bad = custom_leaf(world, m, q, 9000, q, 5000)
    else:  # counts from period p + 1, whose batch is not final
        bad = custom_leaf(world, m, q, 9000, p + 1, 5000)
    others = [world.leaf(x, q, 8000, 0, prev=first[i]) for i, x in enumerate(meters) if x != m]
    leaves = sorted(others + [bad], key=lambda lf: lf.reading.meter_id)
    tree = batch_with(world, q, leaves)
    idx = leaves.index(bad)
    # the evidence arguments are not needed for these: pass the final batch anyway
    tx = prove(world, tree, q, idx, p, first_tree, 0, stranger)
    assert tx.events[0].reason == BAD_PREVIOUS and world.batch(q).status == REJECTED


def test_evidence_must_be_on_the_chain_and_earlier(world, ledger, history, stranger):
    meters, p, first, first_tree = history
    second = [world.leaf(m, p + 1, 6000 + i, 0, prev=first[i]) for i, m in enumerate(meters)]
    tree = batch_with(world, p + 1, second)
    # p + 2 is built on p + 1 (pending, its parent): counting from p skips p + 1's leaves
    third = [world.leaf(m, p + 2, 7000 + i, 0, prev=first[i]) for i, m in enumerate(meters)]
    tree3 = batch_with(world, p + 2, third)
    with ape.reverts(ledger.BadEvidence, what="previous batch not earlier"):
        prove(world, tree, p + 1, 0, p + 2, tree3, 0, stranger)
    tx = prove(world, tree3, p + 2, 0, p + 1, tree, 0, stranger)
    assert tx.events[0].reason == BAD_PREVIOUS and world.batch(p + 2).status == REJECTED
    # the honest p + 2 counts from p + 1's leaves: the same evidence proves nothing
    honest3 = [world.leaf(m, p + 2, 7000 + i, 0, prev=second[i]) for i, m in enumerate(meters)]
    tree3 = batch_with(world, p + 2, honest3)
    with ape.reverts(ledger.NoFraud):
        prove(world, tree3, p + 2, 0, p + 1, tree, 0, stranger)
    world.pass_window()
    with ape.reverts(ledger.ChallengeWindowClosed):
        prove(world, tree3, p + 2, 0, p + 1, tree, 0, stranger)
    with ape.reverts(ledger.PeriodSuperseded):
        world.submit(tree3, p - 1)  # nothing can be settled behind the latest final period


def test_unregistered_meter_is_for_prove_unknown_meter(world, ledger, history, stranger):
    meters, p, first, first_tree = history
    from settlement_builders import MeterSpec
    ghost = MeterSpec("ghost-prev", GROUP_A, active_from=p - 10)
    leaves = sorted([world.leaf(ghost, p + 1, 1, 0)] + [first[0]], key=lambda lf: lf.reading.meter_id)
    tree = batch_with(world, p + 1, leaves)
    idx = [lf.reading.meter_id for lf in leaves].index(ghost.meter_id)
    with ape.reverts(ledger.BadEvidence):
        prove(world, tree, p + 1, idx, p, first_tree, 0, stranger)


def late_meter(world, first, want, active_from=None, **kw):
    """A meter (not in the final batch `first`) whose id sorts at position `want` among it."""
    from settlement_builders import MeterSpec
    ids = [lf.reading.meter_id for lf in first]
    start = world.period - 10 if active_from is None else active_from
    for i in range(10_000):
        m = MeterSpec(f"late-{want}-{start}-{i}", GROUP_A, active_from=start, **kw)
        if sum(x < m.meter_id for x in ids) == want:
            return world.register(m)
    raise AssertionError("no id found")


@pytest.mark.parametrize("position", ["first", "second", "middle", "last"])
def test_missing_previous(world, ledger, history, stranger, position):
    meters, p, first, first_tree = history
    want = {"first": 0, "second": 1, "middle": 2, "last": 3}[position]
    late = late_meter(world, first, want)
    # the late meter claims to count from period p, whose final batch does not hold it
    bad = custom_leaf(world, late, p + 1, 9000, p, 8000)
    honest = [world.leaf(m, p + 1, 6000 + i, 0, prev=first[i]) for i, m in enumerate(meters)]
    leaves = sorted(honest + [bad], key=lambda lf: lf.reading.meter_id)
    tree = batch_with(world, p + 1, leaves)
    k = leaves.index(bad)
    near = {"first": [0], "second": [0, 1], "middle": [1, 2], "last": [2]}[position]
    args = (p + 1, GROUP_A, leaf_struct(bad), k, tree.proof(k), near[0],
            [leaf_struct(first[j]) for j in near],
            first_tree.proof(near[0]) if len(near) == 1 else first_tree.pair_proof(near[0]))
    # an honest leaf's own previous leaf is no gap
    h = leaves.index(honest[1])
    with ape.reverts(ledger.NoFraud):
        ledger.proveMissingPrevious(p + 1, GROUP_A, leaf_struct(honest[1]), h, tree.proof(h), 1,
                                    [leaf_struct(first[1]), leaf_struct(first[2])],
                                    first_tree.pair_proof(1), sender=stranger)
    if position == "middle":  # neighbours that are not adjacent prove nothing
        with ape.reverts(ledger.BadProof):
            ledger.proveMissingPrevious(*args[:5], 0, args[6], first_tree.pair_proof(0), sender=stranger)
        with ape.reverts(ledger.BadEvidence):  # the two whole proofs, not the shared path once
            ledger.proveMissingPrevious(*args[:7], first_tree.proof(1) + first_tree.proof(2), sender=stranger)
    tx = ledger.proveMissingPrevious(*args, sender=stranger)
    assert tx.events[0].reason == 8 and world.batch(p + 1).status == REJECTED


def test_missing_previous_needs_a_final_earlier_batch(world, ledger, history, stranger):
    meters, p, first, first_tree = history
    bad = custom_leaf(world, meters[0], p + 2, 9000, p + 1, 5000)  # p + 1 has no batch at all
    leaves = sorted([bad] + [world.leaf(m, p + 2, 7000, 0, prev=first[i + 1]) for i, m in enumerate(meters[1:])],
                    key=lambda lf: lf.reading.meter_id)
    tree = batch_with(world, p + 2, leaves)
    k = leaves.index(bad)
    with ape.reverts(ledger.BadEvidence):
        ledger.proveMissingPrevious(p + 2, GROUP_A, leaf_struct(bad), k, tree.proof(k), 0, [leaf_struct(first[0])],
                                    first_tree.proof(0), sender=stranger)
    # that case is self-evident for proveBadPrevious
    tx = prove(world, tree, p + 2, k, p, first_tree, 0, stranger)
    assert tx.events[0].reason == BAD_PREVIOUS


@pytest.mark.parametrize("who", ["stranger", "colluders"])
def test_new_meter_counts_from_its_baseline(world, ledger, history, stranger, who):
    """Issue 11 item 3: a meter registered from the period after a final batch counts from its
    baseline at that batch's period, which does not hold it: that is no missing previous."""
    meters, p, first, first_tree = history
    new = late_meter(world, first, 2, active_from=p + 1, baseline_import=4000)
    if who == "stranger":
        first_leaf = world.leaf(new, p + 1, 4500, 0)  # prevPeriod p = activeFrom - 1, the baseline
    else:  # a colluding quorum claims the baseline period with registers that are not the baseline
        first_leaf = custom_leaf(world, new, p + 1, 9000, p, 1000)
    honest = [world.leaf(m, p + 1, 6000 + i, 0, prev=first[i]) for i, m in enumerate(meters)]
    leaves = sorted(honest + [first_leaf], key=lambda lf: lf.reading.meter_id)
    tree = batch_with(world, p + 1, leaves)
    k = leaves.index(first_leaf)
    with ape.reverts(ledger.BadEvidence, what="baseline: use proveBadPrevious"):
        ledger.proveMissingPrevious(p + 1, GROUP_A, leaf_struct(first_leaf), k, tree.proof(k), 1,
                                    [leaf_struct(first[1]), leaf_struct(first[2])], first_tree.pair_proof(1),
                                    sender=stranger)
    if who == "stranger":
        with ape.reverts(ledger.BadEvidence, what="other meter"):  # batch p holds no leaf of it
            prove(world, tree, p + 1, k, p, first_tree, 0, stranger)
        world.pass_window()
        world.finalize(p + 1)
        assert world.batch(p + 1).status == 2
    else:
        tx = prove(world, tree, p + 1, k, p, first_tree, 0, stranger)
        assert tx.events[0].reason == BAD_PREVIOUS and world.batch(p + 1).status == REJECTED


def test_evidence_from_another_group_is_refused(world, ledger, history, stranger):
    """Issue 11 item 7: another group's final batch holding the meter (itself unproven fraud)
    cannot reject this group's honest batch."""
    from settlement_builders import GROUP_B
    meters, p, first, first_tree = history
    # group B's colluders finalized a leaf of group A's meter 0 at p + 1, unchallenged
    foreign = [custom_leaf(world, meters[0], p + 1, 5500, p, 5000)]
    foreign_tree = world.settle(foreign, p + 1, GROUP_B)
    honest = [world.leaf(m, p + 2, 7000 + i, 0, prev=first[i]) for i, m in enumerate(meters)]
    tree = batch_with(world, p + 2, honest)
    with ape.reverts(ledger.BadEvidence, what="other group"):
        prove(world, tree, p + 2, 0, p + 1, foreign_tree, 0, stranger, prev_group=GROUP_B)
    assert world.batch(p + 2).status == PENDING
