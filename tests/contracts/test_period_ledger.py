"""PeriodLedger batches: k-of-n submission, challenge window, finalization, replacement, replay."""
import ape
import pytest
from settlement_builders import (
    CHALLENGE_WINDOW,
    GROUP_A,
    GROUP_B,
    SumTree,
    cosign,
    header_struct,
    leaf_struct,
    make_leaf,
    ref,
)

STATUS_NONE, STATUS_PENDING, STATUS_FINAL, STATUS_REJECTED = 0, 1, 2, 3


def honest_tree(world, n=3, period=None, group=GROUP_A, prefix="m"):
    period = world.period if period is None else period
    meters = world.meters(n, group, prefix=prefix)
    return SumTree.from_leaves([world.leaf(m, period, 1000 + i, 10 * i, None) for i, m in enumerate(meters)]), meters


def test_submit_then_finalize(world, ledger, operators):
    tree, _ = honest_tree(world)
    tx = world.submit(tree, world.period)
    b = world.batch(world.period)
    root = tree.root
    assert (b.root, b.totalImportMwh, b.totalExportMwh, b.count, b.status) == (root[0], root[1], root[2], 3,
                                                                               STATUS_PENDING)
    [ev] = tx.events
    assert ev.event_name == "BatchSubmitted" and ev.root == root[0] and ev.count == 3
    assert ev.submitter == operators[0].address and ev.totalImportMwh == root[1]
    with ape.reverts(ledger.ChallengeWindowOpen):
        world.finalize(world.period)
    world.pass_window()
    tx = world.finalize(world.period)
    assert world.batch(world.period).status == STATUS_FINAL
    assert ledger.lastFinalPeriod(GROUP_A) == world.period
    [ev] = tx.events
    assert ev.event_name == "BatchFinalized" and ev.root == root[0] and ev.period == world.period


def test_replays_revert_and_change_nothing(world, ledger):
    tree, _ = honest_tree(world)
    world.submit(tree, world.period)
    before = world.batch(world.period)
    with ape.reverts(ledger.BatchExists, status=STATUS_PENDING):
        world.submit(tree, world.period)
    assert world.batch(world.period) == before
    world.pass_window()
    world.finalize(world.period)
    final = world.batch(world.period)
    with ape.reverts(ledger.BatchNotPending, status=STATUS_FINAL):
        world.finalize(world.period)
    with ape.reverts(ledger.BatchExists, status=STATUS_FINAL):
        world.submit(tree, world.period)
    assert world.batch(world.period) == final


def test_quorum_rules(world, ledger, registry, admin, accounts):
    tree, _ = honest_tree(world)
    h = tree.header(world.period, GROUP_A, epoch=world.epoch)
    keys = world.keys(5)
    # too few signatures
    with ape.reverts(ledger.QuorumNotReached, signatures=2, quorum=3):
        ledger.submitBatch(header_struct(h), cosign(world.domain, h, keys[:2]), sender=world.operators[0])
    # the same operator twice (not distinct) and unsorted signers
    sigs = cosign(world.domain, h, keys[:3])
    with ape.reverts(ledger.SignersNotAscending, index=1):
        ledger.submitBatch(header_struct(h), [sigs[0], sigs[0], sigs[1]], sender=world.operators[0])
    with ape.reverts(ledger.SignersNotAscending):
        ledger.submitBatch(header_struct(h), list(reversed(sigs)), sender=world.operators[0])
    # a signer outside the operator set
    outsider = bytes.fromhex(accounts[9].private_key[2:])
    with ape.reverts(ledger.NotAnOperator, signer=accounts[9].address):
        ledger.submitBatch(header_struct(h), cosign(world.domain, h, keys[:2] + [outsider]),
                           sender=world.operators[0])
    # signatures over another header
    other = ref.BatchHeader(h.period, h.group_id, h.root, h.total_import_mwh + 1, h.total_export_mwh, h.count, h.epoch)
    with ape.reverts(ledger.NotAnOperator):
        ledger.submitBatch(header_struct(h), cosign(world.domain, other, keys[:3]), sender=world.operators[0])
    # a malformed signature
    with ape.reverts(ledger.ECDSAInvalidSignatureLength, length=64):
        ledger.submitBatch(header_struct(h), [s[:64] for s in sigs], sender=world.operators[0])
    assert world.batch(world.period).status == STATUS_NONE
    # quorum is governed: with 5-of-5 three signatures no longer do
    registry.setQuorum(5, sender=admin)
    with ape.reverts(ledger.QuorumNotReached, signatures=3, quorum=5):
        world.submit(tree, world.period)
    world.submit(tree, world.period, keys=keys)
    assert world.batch(world.period).status == STATUS_PENDING


def test_quorum_not_set(project, admin, registry, world):
    fresh = admin.deploy(project.MeterRegistry, admin, 0, 900)
    fresh.addOperator(world.operators[0], sender=admin)
    led = admin.deploy(project.PeriodLedger, fresh, 900, CHALLENGE_WINDOW, CHALLENGE_WINDOW)
    h = ref.BatchHeader(world.period, GROUP_A, b"\1" * 32, 1, 1, 1, fresh.operatorEpoch())
    with ape.reverts(led.QuorumNotSet):
        led.submitBatch(header_struct(h), [], sender=world.operators[0])


def test_header_checks(world, ledger, chain):
    tree, _ = honest_tree(world)
    with ape.reverts(ledger.EmptyBatch):
        world.submit(tree, world.period, count=0)
    with ape.reverts(ledger.InvalidGroup):
        world.submit(tree, world.period, group=b"\0" * 32)
    current = chain.pending_timestamp // 900
    with ape.reverts(ledger.PeriodNotClosed, period=current):
        world.submit(tree, current)


def test_finality_moves_forward(world, ledger):
    tree, _ = honest_tree(world)
    later = world.period + 1
    world.submit(tree, world.period)
    world.submit(tree, later)  # a pending earlier batch does not block a later one: it is its parent
    world.pass_window()
    world.finalize(world.period)
    world.finalize(later)
    with ape.reverts(ledger.PeriodSuperseded):
        world.submit(tree, world.period - 1)
    assert world.batch(world.period).status == STATUS_FINAL and ledger.lastFinalPeriod(GROUP_A) == later
    # other groups are independent
    world.submit(tree, world.period, group=GROUP_B)


def test_unauthorized_callers(world, ledger, stranger, meter_operator):
    tree, _ = honest_tree(world)
    h = tree.header(world.period, GROUP_A, epoch=world.epoch)
    sigs = cosign(world.domain, h, world.keys())
    role = world.registry.SETTLEMENT_OPERATOR_ROLE()
    for caller in (stranger, meter_operator):
        with ape.reverts(ledger.AccessControlUnauthorizedAccount, account=caller.address, neededRole=role):
            ledger.submitBatch(header_struct(h), sigs, sender=caller)
    world.submit(tree, world.period)
    world.pass_window()
    with ape.reverts(ledger.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=role):
        ledger.finalize(world.period, GROUP_A, sender=stranger)
    assert world.batch(world.period).status == STATUS_PENDING


def test_views(ledger, registry, domain):
    assert ledger.domainSeparator() == domain.separator()
    assert ledger.periodSeconds() == 900 and ledger.challengeWindow() == CHALLENGE_WINDOW
    assert ledger.registry() == registry.address


def test_chain_runs_paris(chain):
    """ape-config pins `foundry: evm_version: paris` (passed to anvil as --hardfork), the fork
    the contracts are compiled for and the last one Clique runs: PUSH0 (Shanghai) is refused."""
    with pytest.raises(Exception, match="NotActivated|invalid opcode"):
        chain.provider.web3.eth.call({"data": "0x5f5ff3"})  # PUSH0 PUSH0 RETURN


def empty_header(period, epoch, group=GROUP_A, root=b"\0" * 32, imp=0, exp=0):
    return ref.BatchHeader(period, group, root, imp, exp, 0, epoch)


def test_empty_batch_records_a_zero_period(world, ledger, stranger):
    """Issue 11 item 5: a group that settled nothing records an empty batch (so grids roll up);
    it must be the empty node, and it holds no meter."""
    p = world.period
    for bad in (empty_header(p, world.epoch, root=b"\1" * 32), empty_header(p, world.epoch, imp=5),
                empty_header(p, world.epoch, exp=5)):
        with ape.reverts(ledger.EmptyBatch):  # colluders hiding totals behind count 0
            ledger.submitBatch(header_struct(bad), cosign(world.domain, bad, world.keys()), sender=world.operators[0])
    h = empty_header(p, world.epoch)
    ledger.submitBatch(header_struct(h), cosign(world.domain, h, world.keys()), sender=world.operators[0])
    with ape.reverts(ledger.NoFraud):  # a stranger: position 0 of an empty batch is rightly empty
        ledger.proveBadPadding(p, GROUP_A, 0, (b"\0" * 32, 0, 0), [], sender=stranger)
    world.pass_window()
    world.finalize(p)
    b = world.batch(p)
    assert (b.status, b.count, b.totalImportMwh, b.totalExportMwh) == (STATUS_FINAL, 0, 0, 0)
    # colluders let a leaf count from the empty period: its meter is missing there, no
    # neighbour needed to show it
    [m] = world.meters(1, prefix="after-empty")
    bad = make_leaf(world.domain, m, p + 1, 9000, 0, p, 5000, 0)
    tree = SumTree.from_leaves([bad])
    world.submit(tree, p + 1)
    tx = ledger.proveMissingPrevious(p + 1, GROUP_A, leaf_struct(bad), 0, [], 0, [], [], sender=stranger)
    assert tx.events[0].reason == 8 and world.batch(p + 1).status == STATUS_REJECTED


def test_challenge_window_zero_refused(project, admin, registry):
    """Issue 11 item 6: a window of 0 would finalize a forged batch at once."""
    with ape.reverts(project.PeriodLedger.InvalidConfig):
        admin.deploy(project.PeriodLedger, registry, 900, 0, 1)
    led = admin.deploy(project.PeriodLedger, registry, 900, 1, 1)
    assert led.challengeWindow() == led.MIN_CHALLENGE_WINDOW() == 1
