"""Operator epochs (issue 14): every change of the operator set or its quorum starts the next
epoch; a batch header names its epoch and counts only in it, so signatures made for another set,
or by an operator who left, never count; a batch pending across a change stays decidable, and a
banned header stays banned under every later epoch."""
import ape
import pytest
from settlement_builders import ADMIN_DELAY_S, SumTree, cosign, header_struct, leaf_struct, ref

PENDING, FINAL, REJECTED = 1, 2, 3
BAD_SIGNATURE = 1


def key_of(account) -> bytes:
    return bytes.fromhex(account.private_key[2:])


def epochs_started(tx) -> list:
    return [e for e in tx.events if e.event_name == "OperatorEpochStarted"]


@pytest.fixture
def newcomers(accounts):
    return accounts[8], accounts[9]


@pytest.fixture
def restore(registry, admin, operators):
    """Puts the module's operator set (the five operators, quorum 3) back after a test changed it."""
    yield
    members = set(registry.operators())
    leaving = [a for a in members if a not in {op.address for op in operators}]
    joining = [op for op in operators if op.address not in members]
    if leaving or joining or registry.quorum() != 3:
        registry.changeOperators(joining, leaving, 3, sender=admin)


def batch_of(world, group_name: str, prefix: str, **second_leaf_kw) -> tuple[SumTree, bytes, list]:
    """Three new meters of a new group and the tree of their readings (the second one's made with
    `second_leaf_kw`, e.g. a forged signer)."""
    group = ref.group_id(group_name)
    meters = world.meters(3, group, prefix)
    leaves = [world.leaf(m, world.period, 4000 + i, 0, None, **(second_leaf_kw if i == 1 else {}))
              for i, m in enumerate(meters)]
    return SumTree.from_leaves(leaves), group, meters


def submit(world, header, signer_keys, sender):
    world.chain.pending_timestamp = max(world.chain.pending_timestamp, world.chain.blocks.head.timestamp + 1)
    return world.ledger.submitBatch(header_struct(header), cosign(world.domain, header, signer_keys), sender=sender)


def test_each_change_of_the_set_or_quorum_starts_one_epoch(project, admin, accounts):
    reg = admin.deploy(project.MeterRegistry, admin, ADMIN_DELAY_S, 900)
    a, b, c = accounts[7], accounts[8], accounts[9]
    assert reg.operatorEpoch() == 0
    [started] = epochs_started(reg.addOperator(a, sender=admin))
    assert (started.epoch, started.operators, started.quorum) == (1, [a.address], 0)
    [started] = epochs_started(reg.setQuorum(1, sender=admin))
    assert (started.epoch, started.quorum) == (2, 1)
    [started] = epochs_started(reg.grantRole(reg.SETTLEMENT_OPERATOR_ROLE(), b, sender=admin))
    assert started.epoch == 3 and set(started.operators) == {a.address, b.address}
    # a swap and a new quorum: one epoch, never a set in between
    tx = reg.changeOperators([c], [a], 2, sender=admin)
    [started] = epochs_started(tx)
    assert (started.epoch, set(started.operators), started.quorum) == (4, {b.address, c.address}, 2)
    assert {e.event_name for e in tx.events} == {"RoleRevoked", "RoleGranted", "QuorumSet", "OperatorEpochStarted"}
    with ape.reverts(reg.QuorumUnreachable):  # leaving may not strand the quorum, nor start an epoch
        reg.renounceRole(reg.SETTLEMENT_OPERATOR_ROLE(), c, sender=c)
    reg.setQuorum(1, sender=admin)
    assert epochs_started(reg.renounceRole(reg.SETTLEMENT_OPERATOR_ROLE(), c, sender=c))[0].epoch == 6
    # roles other than the operators' change no epoch
    assert not epochs_started(reg.grantRole(reg.METER_OPERATOR_ROLE(), a, sender=admin))
    assert reg.operatorSet() == (6, [b.address], 1) and reg.epochQuorum() == (6, 1)


def test_changing_operators_is_the_admins_alone_and_all_or_nothing(registry, admin, operators, meter_operator,
                                                                   stranger, newcomers):
    before = (registry.operatorEpoch(), set(registry.operators()), registry.quorum())
    for caller in (stranger, meter_operator, operators[0]):
        with ape.reverts(registry.AccessControlUnauthorizedAccount, account=caller.address):
            registry.changeOperators([newcomers[0]], [operators[0]], 3, sender=caller)
    with ape.reverts(registry.NotAnOperator, account=stranger.address):
        registry.changeOperators([newcomers[0]], [stranger], 3, sender=admin)
    with ape.reverts(registry.AlreadyAnOperator, account=operators[1].address):
        registry.changeOperators([newcomers[0], operators[1]], [], 3, sender=admin)
    with ape.reverts(registry.AlreadyAnOperator, account="0x" + "00" * 20):
        registry.changeOperators(["0x" + "00" * 20], [], 3, sender=admin)
    with ape.reverts(registry.InvalidQuorum, quorum=5, operatorCount=4):
        registry.changeOperators([], [operators[0]], 5, sender=admin)
    assert (registry.operatorEpoch(), set(registry.operators()), registry.quorum()) == before


def test_a_header_counts_only_in_the_epoch_it_names(world, ledger, registry, admin, operators, newcomers, restore):
    tree, group, _ = batch_of(world, "epochs:replay", "ep-r")
    e = world.epoch
    signed_before = tree.header(world.period, group, epoch=e)
    sigs_before = cosign(world.domain, signed_before, world.keys())
    presigned = tree.header(world.period, group, epoch=e + 1)
    with ape.reverts(ledger.WrongEpoch, headerEpoch=e + 1, currentEpoch=e):  # no signing ahead of a set
        submit(world, presigned, world.keys(), operators[0])

    registry.changeOperators([newcomers[0]], [operators[4]], 3, sender=admin)
    assert world.epoch == e + 1
    with ape.reverts(ledger.WrongEpoch, headerEpoch=e, currentEpoch=e + 1):  # the old set's signatures, replayed
        ledger.submitBatch(header_struct(signed_before), sigs_before, sender=operators[0])
    now = tree.header(world.period, group, epoch=e + 1)
    with ape.reverts(ledger.NotAnOperator, signer=operators[4].address):  # one who left signs along
        submit(world, now, [key_of(operators[2]), key_of(operators[3]), key_of(operators[4])], operators[2])
    with ape.reverts(ledger.AccessControlUnauthorizedAccount, account=operators[4].address):
        submit(world, now, world.keys(), operators[4])
    submit(world, now, [key_of(operators[0]), key_of(operators[1]), key_of(newcomers[0])], newcomers[0])
    assert world.batch(world.period, group).status == PENDING


def test_an_honest_batch_pending_across_a_change_finalizes_and_no_one_can_reject_it(
        world, ledger, registry, admin, operators, newcomers, stranger, restore):
    tree, group, _ = batch_of(world, "epochs:honest", "ep-h")
    submit(world, tree.header(world.period, group, epoch=world.epoch), world.keys(), operators[0])
    # its submitter and two of its signers leave; two newcomers join; the quorum stays 3 of 4
    registry.changeOperators(list(newcomers), [operators[0], operators[1], operators[2]], 3, sender=admin)
    for i in range(len(tree.leaves)):  # the new set, the leavers, a stranger: nothing to prove
        with ape.reverts(ledger.NoFraud):
            ledger.proveBadSignature(world.period, group, leaf_struct(tree.leaves[i]), i, tree.proof(i),
                                     sender=stranger)
    world.pass_window()
    with ape.reverts(ledger.AccessControlUnauthorizedAccount, account=operators[0].address):
        ledger.finalize(world.period, group, sender=operators[0])  # the leaver no longer drives it
    ledger.finalize(world.period, group, sender=newcomers[1])
    assert world.batch(world.period, group).status == FINAL


def test_a_false_batch_pending_across_a_change_is_proven_and_stays_banned(
        world, ledger, registry, admin, operators, newcomers, stranger, restore):
    """A colluding quorum commits a forged reading, then is voted out: the batch is still proven
    by a stranger, the colluders' signatures count under no epoch, and the header is banned for
    the new set too."""
    tree, group, meters = batch_of(world, "epochs:false", "ep-f", signer=b"\x11" * 32)
    e = world.epoch
    false = tree.header(world.period, group, epoch=e)
    colluders = world.keys()
    submit(world, false, colluders, operators[0])
    registry.changeOperators(list(newcomers), [operators[0], operators[1]], 3, sender=admin)
    tx = ledger.proveBadSignature(world.period, group, leaf_struct(tree.leaves[1]), 1, tree.proof(1),
                                  sender=stranger)
    assert tx.events[0].reason == BAD_SIGNATURE and world.batch(world.period, group).status == REJECTED
    assert ledger.headerRejected(false.content_hash())
    again = tree.header(world.period, group, epoch=e + 1)
    honest_new_set = [key_of(operators[2]), key_of(operators[3]), key_of(newcomers[0])]
    with ape.reverts(ledger.HeaderRejected, contentHash=false.content_hash()):  # banned under every epoch
        submit(world, again, honest_new_set, operators[2])
    fixed = SumTree.from_leaves([world.leaf(m, world.period, lf.reading.import_mwh, 0, None)
                                 for m, lf in zip(meters, tree.leaves)])
    submit(world, fixed.header(world.period, group, epoch=e + 1), honest_new_set, operators[2])
    assert world.batch(world.period, group).status == PENDING
