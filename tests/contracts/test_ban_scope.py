"""What a rejection bans. A fraud in the data (signature, order, sums, padding, kinds, widths) bans
the header's content under every epoch; a header judged against its context (the previous register
on the chain it was submitted on, the meter's registration at submission) is only cut: colluders
could otherwise submit an honest header where it does not fit, prove it there and ban it for good
(found by the attacker review of the operator epochs)."""
import pytest
from settlement_builders import GROUP_A, MeterSpec, SumTree, cosign, header_struct, leaf_struct

PENDING, FINAL, REJECTED = 1, 2, 3
UNKNOWN_METER, BAD_PREVIOUS, WITHHELD = 2, 3, 12


def key_of(account) -> bytes:
    return bytes.fromhex(account.private_key[2:])


def submit(world, header, signer_keys, sender):
    world.chain.pending_timestamp = max(world.chain.pending_timestamp, world.chain.blocks.head.timestamp + 1)
    return world.ledger.submitBatch(header_struct(header), cosign(world.domain, header, signer_keys), sender=sender)


@pytest.fixture
def newcomers(accounts):
    return accounts[8], accounts[9]


def test_colluders_ban_an_honest_header_by_submitting_it_on_a_false_parent(
        world, ledger, registry, admin, operators, newcomers, stranger, chain):
    meters = world.meters(3, prefix="ctxban")
    p = world.period
    honest_p = [world.leaf(m, p, 1000 + i, 0) for i, m in enumerate(meters)]
    honest_p1 = [world.leaf(m, p + 1, 2000 + i, 0, prev=honest_p[i]) for i, m in enumerate(meters)]
    tree_p, tree_p1 = SumTree.from_leaves(honest_p), SumTree.from_leaves(honest_p1)
    colluders = world.keys()  # operators 0, 1, 2: the quorum (3 of 5)

    # 1. the colluders take slot p with a false batch (meter 0's register forged) and withhold its
    #    leaves; an honest operator can only challenge its availability
    false_p_leaves = [world.leaf(meters[0], p, 1500, 0, signer=b"\x44" * 32)] + honest_p[1:]
    false_p = SumTree.from_leaves(false_p_leaves)
    submit(world, false_p.header(p, GROUP_A, epoch=world.epoch), colluders, operators[0])
    challenge = ledger.challengeAvailability(p, GROUP_A, sender=operators[3])
    respond_by = challenge.events[0].respondBy

    # 2. within the response time, they submit the HONEST header of p + 1 on top of it ...
    honest_header_p1 = tree_p1.header(p + 1, GROUP_A, epoch=world.epoch)
    submit(world, honest_header_p1, colluders, operators[0])
    assert world.batch(p + 1).parent == p
    # 3. ... and prove it "bad previous" against their own false leaf: the honest content is banned
    tx = ledger.proveBadPrevious(p + 1, GROUP_A, leaf_struct(honest_p1[0]), 0, tree_p1.proof(0),
                                 p, GROUP_A, leaf_struct(false_p_leaves[0]), 0, false_p.proof(0),
                                 sender=operators[1])
    assert tx.events[0].reason == BAD_PREVIOUS and world.batch(p + 1).status == REJECTED

    # 4. the false p times out unrevealed; the colluders are voted out (a new epoch)
    chain.pending_timestamp = max(chain.pending_timestamp, respond_by)
    assert ledger.rejectUnrevealed(p, GROUP_A, sender=stranger).events[0].reason == WITHHELD
    registry.changeOperators(list(newcomers), [operators[0], operators[1], operators[2]], 3, sender=admin)
    honest = [key_of(operators[3]), key_of(operators[4]), key_of(newcomers[0])]

    # 5. the honest chain regrows: p is fine ...
    submit(world, tree_p.header(p, GROUP_A, epoch=world.epoch), honest, operators[3])
    assert world.batch(p).status == PENDING
    # ... but the honest p + 1 (the same readings, the same content) can never be submitted
    again = tree_p1.header(p + 1, GROUP_A, epoch=world.epoch)
    assert not ledger.headerRejected(again.content_hash()), "the honest header of p + 1 is banned for good"
    submit(world, again, honest, operators[3])
    world.pass_window()
    ledger.finalize(p, GROUP_A, sender=operators[3])
    ledger.finalize(p + 1, GROUP_A, sender=operators[3])
    assert world.batch(p + 1).status == FINAL


def test_a_header_proven_unknown_meter_before_its_registration_is_not_banned(
        world, ledger, operators, stranger):
    """The colluders submit the honest header of a meter whose registration is on its way (its
    readings reached them first) and prove it against the registry of that moment; once the meter
    is registered, the same header goes in and finalizes."""
    p = world.period
    (known,) = world.meters(1, prefix="banscope-known")
    late = MeterSpec("banscope-late", GROUP_A, active_from=p - 10)
    leaves = sorted([world.leaf(known, p, 700, 0), world.leaf(late, p, 900, 0)], key=lambda lf: lf.reading.meter_id)
    tree = SumTree.from_leaves(leaves)
    header = tree.header(p, GROUP_A, epoch=world.epoch)
    submit(world, header, world.keys(), operators[0])
    i = [lf.reading.meter_id for lf in leaves].index(late.meter_id)
    tx = ledger.proveUnknownMeter(p, GROUP_A, leaf_struct(leaves[i]), i, tree.proof(i), sender=stranger)
    assert tx.events[0].reason == UNKNOWN_METER and world.batch(p).status == REJECTED
    assert not ledger.headerRejected(header.content_hash())
    world.register(late)
    submit(world, header, world.keys(), operators[0])
    world.pass_window()
    ledger.finalize(p, GROUP_A, sender=operators[0])
    assert world.batch(p).status == FINAL
