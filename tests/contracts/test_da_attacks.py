"""Attacker review of the data availability challenge (written as the attacker): a colluding
3-of-5 quorum reusing a slot within one timestamp, a withheld honest batch that must stay
resubmittable, response deadlines that grow with the batch, and challengers forcing reveals."""
import itertools

import ape
import pytest
from settlement_builders import GROUP_A, RESPONSE_TIME, SumTree, cosign, header_struct, leaf_struct

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
        h = tree.header(world.period, GROUP_A, None)
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
