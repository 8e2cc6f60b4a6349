"""Issue 11 items 6 and 7: a group's batches form one chain. A batch counts from its parent (the
group's previous live batch, pending or final), finalizes only after it, whoever calls; a
rejection orphans its descendants; the challenge window may span several periods."""
import ape
import pytest
from settlement_builders import GROUP_A, PERIOD_SECONDS, SumTree, leaf_struct, ref

PENDING, FINAL, REJECTED = 1, 2, 3
ORPHANED = 11


def chain_of(ledger, group=GROUP_A):
    c = ledger.groupChain(group)
    return c.lastFinal, c.tip


@pytest.fixture
def meters(world):
    return world.meters(3, prefix="chain")


def honest_batch(world, meters, period, prev=None):
    """Leaves for `period` counting from `prev` (the parent's leaves; None: the baseline)."""
    return [world.leaf(m, period, 1000 * (period - world.period + 1) + i, 0, prev=prev[i] if prev else None)
            for i, m in enumerate(meters)]


def forged(world, meters, period):
    leaves = [world.leaf(m, period, 500 + i, 0, signer=b"\x44" * 32 if i == 1 else None)
              for i, m in enumerate(meters)]
    return SumTree.from_leaves(leaves)


def orphaned(world, ledger, meters, stranger):
    """Colluders commit a forged p and build p + 1 on it; a stranger's proof rejects p. Returns
    the orphan p + 1's tree."""
    p = world.period
    bad = forged(world, meters, p)
    world.submit(bad, p)
    on_bad = SumTree.from_leaves(honest_batch(world, meters, p + 1, bad.leaves))
    world.submit(on_bad, p + 1)
    ledger.proveBadSignature(p, GROUP_A, leaf_struct(bad.leaves[1]), 1, bad.proof(1), sender=stranger)
    return on_bad


def test_the_earliest_batch_finalizes_first(world, ledger, meters, stranger):
    p = world.period
    first = honest_batch(world, meters, p)
    second = honest_batch(world, meters, p + 1, first)
    world.submit(SumTree.from_leaves(first), p)
    world.submit(SumTree.from_leaves(second), p + 1)
    assert world.batch(p + 1).parent == p and chain_of(ledger) == (0, p + 1)
    world.pass_window()  # both past their windows: the caller cannot pick the later one
    with ape.reverts(ledger.ParentNotFinal, period=p + 1, parent=p):
        world.finalize(p + 1)
    world.finalize(p)
    world.finalize(p + 1)
    assert chain_of(ledger) == (p + 1, p + 1)
    tree = SumTree.from_leaves(honest_batch(world, meters, p + 3, second))
    world.submit(tree, p + 3)  # p + 2 had nothing to settle
    with ape.reverts(ledger.BehindTip, period=p + 2, tip=p + 3):  # a gap below the tip stays one
        world.submit(tree, p + 2)


def test_rejection_orphans_the_descendants(world, ledger, meters, stranger):
    """Colluders (3 of 5) commit a forged p and build p + 1 on it; the proof against p orphans
    p + 1, which neither finalizes nor can be proven against; the honest chain regrows."""
    p = world.period
    on_bad = orphaned(world, ledger, meters, stranger)
    assert chain_of(ledger) == (0, 0)
    with ape.reverts(ledger.BatchOrphaned, period=p + 1):
        ledger.proveBadSignature(p + 1, GROUP_A, leaf_struct(on_bad.leaves[0]), 0, on_bad.proof(0), sender=stranger)
    world.pass_window()
    with ape.reverts(ledger.BatchOrphaned, period=p + 1):
        world.finalize(p + 1)
    first = honest_batch(world, meters, p)
    world.submit(SumTree.from_leaves(first), p)
    world.submit(SumTree.from_leaves(honest_batch(world, meters, p + 1, first)), p + 1)  # replaces the orphan
    world.pass_window()
    world.finalize(p)
    world.finalize(p + 1)
    assert world.batch(p + 1).status == FINAL and chain_of(ledger) == (p + 1, p + 1)


def test_a_skipped_orphan_is_rejected(world, ledger, meters, stranger):
    p = world.period
    orphaned(world, ledger, meters, stranger)
    # the honest operators settle p + 2 next (nothing for p, p + 1): the orphan p + 1 lies below it
    tx = world.submit(SumTree.from_leaves(honest_batch(world, meters, p + 2)), p + 2)
    [orphan] = [e for e in tx.events if e.event_name == "BatchRejected"]
    assert (orphan.period, orphan.reason) == (p + 1, ORPHANED) and world.batch(p + 1).status == REJECTED
    assert world.batch(p + 2).parent == 0 and chain_of(ledger) == (0, p + 2)
    world.pass_window()
    world.finalize(p + 2)
    assert world.batch(p + 2).status == FINAL


def test_window_longer_than_a_period(project, admin, registry, world, chain, operators, meters):
    """The window is a ledger setting independent of the period: three periods pending at once
    finalize in order."""
    window = 3 * PERIOD_SECONDS
    led = admin.deploy(project.PeriodLedger, registry, PERIOD_SECONDS, window, window)
    domain = ref.Domain(chain.chain_id, led.address)
    from settlement_builders import cosign, header_struct, make_leaf
    p = world.period
    prev = None
    for q in (p, p + 1, p + 2):
        leaves = [make_leaf(domain, m, q, 1000 * (q - p + 1), 0, *(prev[i] if prev else (m.active_from - 1, 0, 0)))
                  for i, m in enumerate(meters)]
        h = SumTree.from_leaves(leaves).header(q, GROUP_A, epoch=world.epoch)
        led.submitBatch(header_struct(h), cosign(domain, h, world.keys()), sender=operators[0])
        prev = [(q, lf.reading.import_mwh, 0) for lf in leaves]
        chain.pending_timestamp += PERIOD_SECONDS  # the next period's batch comes while this one is pending
    assert all(led.getBatch(q, GROUP_A).status == PENDING for q in (p, p + 1, p + 2))
    with ape.reverts(led.ChallengeWindowOpen):
        led.finalize(p + 2, GROUP_A, sender=operators[0])
    chain.pending_timestamp += window
    for q in (p, p + 1, p + 2):
        led.finalize(q, GROUP_A, sender=operators[0])
    assert led.lastFinalPeriod(GROUP_A) == p + 2
