"""Attacker review of the data availability challenge (written as the attacker): a colluding
3-of-5 quorum reusing a slot within one timestamp, a withheld honest batch that must stay
resubmittable, response deadlines that grow with the batch, and challengers forcing reveals."""
import itertools

import ape
import pytest
from settlement_builders import GROUP_A, RESPONSE_TIME, MeterSpec, SumTree, cosign, header_struct, leaf_struct

STATUS_PENDING, STATUS_FINAL, STATUS_REJECTED = 1, 2, 3
REASON_BAD_SIGNATURE, REASON_WITHHELD = 1, 12
_labels = itertools.count()


@pytest.fixture(scope="module")
def auditor(accounts, registry, admin):
    a = accounts[8]
    registry.grantRole(registry.AUDITOR_ROLE(), a, sender=admin)
    return a


def leaves_of(world, n, **kw):
    meters = world.meters(n, prefix=f"atk{next(_labels)}-")
    return meters, [world.leaf(m, world.period, 1000 + 7 * i, 3 * i, **kw) for i, m in enumerate(meters)]


def test_withheld_batch_cannot_inherit_a_decoys_challenge_in_the_same_block(world, ledger, auditor, stranger, chain):
    """Colluders, all at one timestamp: submit a decoy X, challenge it, reveal it, prove it bad,
    then submit the withheld Y into the same slot. Y must start unchallenged: an honest challenge
    succeeds, and unrevealed Y is rejected at the timeout instead of finalizing."""
    colluder = world.operators[0]
    meters, decoy = leaves_of(world, 3)
    decoy[1] = world.leaf(meters[1], world.period, 5000, 0, signer=b"\x42" * 32)  # provably bad
    x = SumTree.from_leaves(decoy)
    _, withheld = leaves_of(world, 4)
    y = SumTree.from_leaves(withheld)
    t = chain.pending_timestamp + 10
    for step in (
        lambda: world.submit(x, world.period),
        lambda: ledger.challengeAvailability(world.period, GROUP_A, sender=colluder),
        lambda: ledger.revealLeaves(world.period, GROUP_A, 0, [leaf_struct(lf) for lf in decoy], sender=colluder),
        lambda: ledger.proveBadSignature(world.period, GROUP_A, leaf_struct(decoy[1]), 1, x.proof(1), sender=colluder),
        lambda: world.submit(y, world.period),
    ):
        chain.pending_timestamp = t
        step()
    assert world.batch(world.period).submittedAt == t and world.batch(world.period).root == y.root[0]
    assert ledger.availabilityChallenge(world.period, GROUP_A).respondBy == 0  # Y starts unchallenged
    tx = ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)  # was AlreadyChallenged
    chain.pending_timestamp = tx.events[0].respondBy
    world.pass_window()
    with ape.reverts(ledger.NotRevealed):
        world.finalize(world.period)
    tx = ledger.rejectUnrevealed(world.period, GROUP_A, sender=stranger)  # was AlreadyRevealed
    assert tx.events[0].reason == REASON_WITHHELD and world.batch(world.period).status == STATUS_REJECTED


def test_same_block_resubmission_in_one_mined_block(world, ledger, auditor, chain):
    """The same attack with automine off: every transaction in one mined block."""
    colluder = world.operators[0]
    meters, decoy = leaves_of(world, 2)
    decoy[0] = world.leaf(meters[0], world.period, 5000, 0, signer=b"\x43" * 32)
    x = SumTree.from_leaves(decoy)
    _, withheld = leaves_of(world, 3)
    y = SumTree.from_leaves(withheld)
    web3 = chain.provider.web3
    abi = [a.model_dump(mode="json", by_alias=True) for a in ledger.contract_type.abi]
    led = web3.eth.contract(address=ledger.address, abi=abi)

    def submit_args(tree):
        h = tree.header(world.period, GROUP_A, None, epoch=world.epoch)
        return header_struct(h), cosign(world.domain, h, world.keys())

    calls = [
        ("submitBatch", submit_args(x)),
        ("challengeAvailability", (world.period, GROUP_A)),
        ("revealLeaves", (world.period, GROUP_A, 0, [leaf_struct(lf) for lf in decoy])),
        ("proveBadSignature", (world.period, GROUP_A, leaf_struct(decoy[0]), 0, x.proof(0))),
        ("submitBatch", submit_args(y)),
    ]
    web3.provider.make_request("evm_setAutomine", [False])
    try:
        sent = [getattr(led.functions, name)(*args).transact({"from": colluder.address, "gas": 3_000_000})
                for name, args in calls]
        web3.provider.make_request("evm_mine", [])
    finally:
        web3.provider.make_request("evm_setAutomine", [True])
    receipts = [web3.eth.get_transaction_receipt(h) for h in sent]
    assert [r["status"] for r in receipts] == [1] * 5
    assert len({r["blockNumber"] for r in receipts}) == 1
    assert world.batch(world.period).root == y.root[0]
    assert ledger.availabilityChallenge(world.period, GROUP_A).respondBy == 0  # Y starts unchallenged
    ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)  # was AlreadyChallenged
    assert ledger.availabilityChallenge(world.period, GROUP_A).challenger == auditor


@pytest.fixture(autouse=True)
def _fresh_periods(chain):
    """Each test starts well after the last one's response times (the ledger is module-wide)."""
    chain.pending_timestamp += 40 * RESPONSE_TIME


def test_withheld_honest_batch_is_rejected_without_a_ban_and_can_be_resubmitted(world, ledger, auditor,
                                                                               meter_operator, stranger, chain):
    """Co-signers too slow (or censored) to reveal in time: the batch is rejected as withheld,
    but its header is not banned: the same honest header is submitted again and revealed."""
    _, leaves = leaves_of(world, 5)
    tree = SumTree.from_leaves(leaves)
    header = tree.header(world.period, GROUP_A, None, epoch=world.epoch)
    world.submit(tree, world.period)
    tx = ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    slow = world.operators[1]
    ledger.revealLeaves(world.period, GROUP_A, 0, [leaf_struct(lf) for lf in leaves[:2]], sender=slow)  # too slow
    chain.pending_timestamp = tx.events[0].respondBy
    assert ledger.rejectUnrevealed(world.period, GROUP_A, sender=stranger).events[0].reason == REASON_WITHHELD
    assert not ledger.headerRejected(header.content_hash())  # was banned
    world.submit(tree, world.period)  # the same header again (was HeaderRejected)
    assert world.batch(world.period).status == STATUS_PENDING and ledger.submissionNumber(world.period, GROUP_A) == 1
    assert ledger.availabilityChallenge(world.period, GROUP_A).respondBy == 0
    ledger.challengeAvailability(world.period, GROUP_A, sender=meter_operator)
    with ape.reverts(ledger.RevealOutOfSequence, firstIndex=2, expected=0):  # no progress carried over
        ledger.revealLeaves(world.period, GROUP_A, 2, [leaf_struct(lf) for lf in leaves[2:]], sender=slow)
    for i in range(0, 5, 2):
        ledger.revealLeaves(world.period, GROUP_A, i, [leaf_struct(lf) for lf in leaves[i:i + 2]],
                            sender=world.operators[1])
    assert ledger.availabilityChallenge(world.period, GROUP_A).revealed
    chain.pending_timestamp += 2 * RESPONSE_TIME + 3600
    world.finalize(world.period)
    assert world.batch(world.period).status == STATUS_FINAL


def test_proven_fraud_still_bans_the_header(world, ledger, stranger):
    meters, leaves = leaves_of(world, 3)
    leaves[2] = world.leaf(meters[2], world.period, 7000, 0, signer=b"\x44" * 32)
    tree = SumTree.from_leaves(leaves)
    world.submit(tree, world.period)
    ledger.proveBadSignature(world.period, GROUP_A, leaf_struct(leaves[2]), 2, tree.proof(2), sender=stranger)
    with ape.reverts(ledger.HeaderRejected):
        world.submit(tree, world.period)


@pytest.mark.parametrize("count,units", [(1, 1), (1024, 1), (1025, 2), (2500, 3), (10_000, 10)])
def test_response_window_grows_with_the_batch(world, ledger, auditor, stranger, chain, count, units):
    """Colluders commit a large batch (here only its header: the leaves are withheld); the
    response deadline is responseTime per started 1,024 leaves, so 10,000 leaves in 40 chunks of
    256 have 10 response times, and nobody can reject before that deadline."""
    _, leaves = leaves_of(world, 2)
    world.submit(SumTree.from_leaves(leaves), world.period, count=count)
    tx = ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    now = chain.blocks.head.timestamp
    assert tx.events[0].respondBy == now + units * RESPONSE_TIME == now + ledger.responseWindow(count)
    chain.pending_timestamp = now + units * RESPONSE_TIME - 1
    with ape.reverts(ledger.ResponseTimeOpen):
        ledger.rejectUnrevealed(world.period, GROUP_A, sender=stranger)
    chain.pending_timestamp = now + units * RESPONSE_TIME
    assert ledger.rejectUnrevealed(world.period, GROUP_A, sender=stranger).events[0].reason == REASON_WITHHELD


def test_one_open_challenge_per_challenger(world, ledger, auditor, meter_operator, stranger, chain):
    """A registered challenger cannot force reveals of every batch: while its challenge is
    unanswered it cannot challenge another, but a different challenger still can, and its own
    budget returns once the challenge is answered (revealed) or timed out."""
    p = world.period
    batches = []
    for q in (p, p + 1, p + 2, p + 3):
        _, leaves = leaves_of(world, 3)
        world.submit(SumTree.from_leaves(leaves), q)
        batches.append(leaves)
    ledger.challengeAvailability(p, GROUP_A, sender=auditor)
    with ape.reverts(ledger.ChallengeOpen, challenger=auditor, period=p):
        ledger.challengeAvailability(p + 1, GROUP_A, sender=auditor)
    tx = ledger.challengeAvailability(p + 1, GROUP_A, sender=meter_operator)  # another challenger can
    with ape.reverts(ledger.AccessControlUnauthorizedAccount):
        ledger.challengeAvailability(p + 2, GROUP_A, sender=stranger)
    ledger.revealLeaves(p, GROUP_A, 0, [leaf_struct(lf) for lf in batches[0]], sender=world.operators[2])
    ledger.challengeAvailability(p + 2, GROUP_A, sender=auditor)  # answered: budget back
    with ape.reverts(ledger.ChallengeOpen):
        ledger.challengeAvailability(p + 3, GROUP_A, sender=meter_operator)  # still unanswered
    chain.pending_timestamp = tx.events[0].respondBy  # timed out: anyone may reject it
    ledger.challengeAvailability(p + 3, GROUP_A, sender=meter_operator)


def test_meter_registered_at_the_submission_timestamp_is_unknown(world, ledger, registry, stranger, chain):
    """A colluding meter operator registers a meter in the submission's block (same timestamp):
    the meter was not registered before the batch, so the batch is rejected (reason 2)."""
    known = world.meters(2, prefix=f"atk{next(_labels)}-")
    late = MeterSpec(f"late{next(_labels)}", GROUP_A, active_from=world.period - 10)
    t = chain.pending_timestamp + 5
    chain.pending_timestamp = t
    world.register(late)
    leaves = sorted([world.leaf(m, world.period, 2000, 0) for m in [*known, late]],
                    key=lambda lf: lf.reading.meter_id)
    tree = SumTree.from_leaves(leaves)
    chain.pending_timestamp = t
    world.submit(tree, world.period, keep_time=True)
    assert world.batch(world.period).submittedAt == t == registry.registeredAt(late.meter_id)
    i = next(i for i, lf in enumerate(leaves) if lf.reading.meter_id == late.meter_id)
    j = next(j for j, lf in enumerate(leaves) if lf.reading.meter_id != late.meter_id)
    with ape.reverts(ledger.NoFraud):  # registered a block earlier (t - 5 or before): known
        ledger.proveUnknownMeter(world.period, GROUP_A, leaf_struct(leaves[j]), j, tree.proof(j), sender=stranger)
    tx = ledger.proveUnknownMeter(world.period, GROUP_A, leaf_struct(leaves[i]), i, tree.proof(i), sender=stranger)
    assert tx.events[0].reason == 2
