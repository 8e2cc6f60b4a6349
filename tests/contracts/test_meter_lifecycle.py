"""A meter point's life after registration: decommissioning from a period that has not ended,
never retroactive, by the meter point operator only; what the fraud proofs make of it."""
import ape
from settlement_builders import PERIOD_SECONDS, MeterSpec, SumTree, leaf_struct, ref

PENDING, FINAL, REJECTED = 1, 2, 3
UNKNOWN_METER = 2  # FraudProofs.REASON_UNKNOWN_METER


def current_period(chain) -> int:
    """The period of the next block, set to the middle of a period so that no test's
    transactions straddle a boundary."""
    period = chain.pending_timestamp // PERIOD_SECONDS + 1
    chain.pending_timestamp = period * PERIOD_SECONDS + PERIOD_SECONDS // 3
    return period


def test_decommission_shortens_the_window_from_a_period_not_yet_ended(registry, meter_operator, chain):
    now = current_period(chain)
    m = MeterSpec("decom-1", ref.group_id("group:decom"), active_from=now - 20)
    registry.registerMeter(*m.register_args(), sender=meter_operator)
    with ape.reverts(registry.Retroactive, period=now - 1, currentPeriod=now):
        registry.decommission(m.meter_id, now - 1, sender=meter_operator)
    tx = registry.decommission(m.meter_id, now, sender=meter_operator)
    [ev] = tx.events
    assert (ev.event_name, ev.meterId, ev.lastPeriod) == ("MeterDecommissioned", m.meter_id, now)
    assert registry.getMeter(m.meter_id).activeUntil == now
    # a replay, or a later end, would lengthen it again: refused
    for last in (now, now + 5):
        with ape.reverts(registry.NotShortening, meterId=m.meter_id, lastPeriod=last):
            registry.decommission(m.meter_id, last, sender=meter_operator)


def test_a_meter_can_be_decommissioned_before_its_first_period(registry, meter_operator, chain):
    now = current_period(chain)
    m = MeterSpec("decom-early", ref.group_id("group:decom"), active_from=now + 10)
    registry.registerMeter(*m.register_args(), sender=meter_operator)
    with ape.reverts(registry.NotShortening, lastPeriod=now + 8):
        registry.decommission(m.meter_id, now + 8, sender=meter_operator)
    registry.decommission(m.meter_id, now + 9, sender=meter_operator)  # never settled
    assert registry.getMeter(m.meter_id).activeUntil == now + 9


def test_decommission_needs_a_registered_meter_and_the_meter_operator_role(
        registry, meter_operator, admin, stranger, operators, chain):
    now = current_period(chain)
    m = MeterSpec("decom-auth", ref.group_id("group:decom"), active_from=now - 1)
    with ape.reverts(registry.UnknownMeter, meterId=m.meter_id):
        registry.decommission(m.meter_id, now, sender=meter_operator)
    registry.registerMeter(*m.register_args(), sender=meter_operator)
    role = registry.METER_OPERATOR_ROLE()
    for caller in (stranger, operators[0], admin):  # the admin governs roles, it does not operate meters
        with ape.reverts(registry.AccessControlUnauthorizedAccount, account=caller.address, neededRole=role):
            registry.decommission(m.meter_id, now, sender=caller)


def test_the_ledger_must_share_the_registry_period(project, admin, registry):
    with ape.reverts(project.PeriodLedger.InvalidConfig):
        admin.deploy(project.PeriodLedger, registry, PERIOD_SECONDS + 1, 3600, 1800)


def _prove(world, ledger, tree, period, index, sender):
    return ledger.proveUnknownMeter(period, tree.group, leaf_struct(tree.leaves[index]), index, tree.proof(index),
                                    sender=sender)


def _batch(world, group, meters, period):
    leaves = sorted((world.leaf(m, period, 5_000 + i, 0) for i, m in enumerate(meters)),
                    key=lambda lf: lf.reading.meter_id)
    tree = SumTree.from_leaves(leaves)
    tree.group = group
    return tree, [lf.reading.meter_id for lf in leaves]


def test_a_pending_batch_keeps_its_meaning_across_a_decommission(world, ledger, registry, stranger, chain):
    """The honest batch of an ended period is pending when its meter is decommissioned: no one
    can reject it for that."""
    group = ref.group_id("group:decom-pending")
    meters = world.meters(2, group, prefix="pend")
    tree, ids = _batch(world, group, meters, world.period)
    world.submit(tree, world.period, group)
    now = current_period(chain)
    registry.decommission(meters[0].meter_id, now, sender=world.meter_operator)
    with ape.reverts(ledger.NoFraud):
        _prove(world, ledger, tree, world.period, ids.index(meters[0].meter_id), stranger)
    world.pass_window()
    world.finalize(world.period, group)
    assert ledger.getBatch(world.period, group).status == FINAL


def test_a_colluding_quorum_settling_a_meter_after_its_last_period_is_proven_false(
        world, ledger, registry, stranger, chain):
    group = ref.group_id("group:decom-after")
    meters = world.meters(2, group, prefix="after")
    now = current_period(chain)
    registry.decommission(meters[0].meter_id, now, sender=world.meter_operator)
    chain.pending_timestamp = (now + 2) * PERIOD_SECONDS + 10  # period now + 1 has ended
    tree, ids = _batch(world, group, meters, now + 1)
    world.submit(tree, now + 1, group)  # all three colluders sign it
    with ape.reverts(ledger.NoFraud):  # the meter still in service is no grounds
        _prove(world, ledger, tree, now + 1, ids.index(meters[1].meter_id), stranger)
    tx = _prove(world, ledger, tree, now + 1, ids.index(meters[0].meter_id), stranger)
    [ev] = tx.events
    assert (ev.event_name, ev.reason) == ("BatchRejected", UNKNOWN_METER)
    assert ledger.getBatch(now + 1, group).status == REJECTED


def test_the_decommissioned_meter_still_settles_its_last_period(world, ledger, registry, stranger, chain):
    group = ref.group_id("group:decom-last")
    meters = world.meters(1, group, prefix="last")
    now = current_period(chain)
    registry.decommission(meters[0].meter_id, now, sender=world.meter_operator)
    chain.pending_timestamp = (now + 1) * PERIOD_SECONDS + 10
    tree, _ = _batch(world, group, meters, now)
    world.submit(tree, now, group)
    with ape.reverts(ledger.NoFraud):
        _prove(world, ledger, tree, now, 0, stranger)
    world.pass_window()
    world.finalize(now, group)
    assert ledger.getBatch(now, group).status == FINAL


BAD_SIGNATURE = 1  # FraudProofs.REASON_BAD_SIGNATURE


def test_a_key_rotation_takes_effect_from_a_later_period_only(registry, meter_operator, chain):
    now = current_period(chain)
    m = MeterSpec("rot-1", ref.group_id("group:rot"), active_from=now - 20)
    registry.registerMeter(*m.register_args(), sender=meter_operator)
    new_key = MeterSpec("rot-1-new", m.group).address
    for retro in (now - 1, now):  # the current period's readings may be signed already
        with ape.reverts(registry.Retroactive, period=retro, currentPeriod=now):
            registry.rotateKey(m.meter_id, new_key, retro, sender=meter_operator)
    tx = registry.rotateKey(m.meter_id, new_key, now + 2, sender=meter_operator)
    [ev] = tx.events
    assert (ev.event_name, ev.meterId, ev.key, ev.fromPeriod, ev.replacesPending) == \
        ("MeterKeyRotated", m.meter_id, new_key, now + 2, False)
    assert [registry.keyAt(m.meter_id, p) for p in (now, now + 1, now + 2, now + 99)] == \
        [m.address, m.address, new_key, new_key]
    assert registry.getMeter(m.meter_id).key == m.address  # the registration itself is never changed
    # while it waits, the next rotation replaces it (a mistyped period mended; no stacking)
    tx = registry.rotateKey(m.meter_id, new_key, now + 1, sender=meter_operator)
    assert tx.events[0].replacesPending
    assert [registry.keyAt(m.meter_id, p) for p in (now, now + 1, now + 2)] == [m.address, new_key, new_key]
    # once in effect, a rotation is kept and the next one follows it
    third = MeterSpec("rot-1-third", m.group).address
    chain.pending_timestamp = (now + 3) * PERIOD_SECONDS + 10
    tx = registry.rotateKey(m.meter_id, third, now + 5, sender=meter_operator)
    assert not tx.events[0].replacesPending
    assert [registry.keyAt(m.meter_id, p) for p in (now, now + 1, now + 4, now + 5, 2**64 - 1)] == \
        [m.address, new_key, new_key, third, third]


def test_rotations_cannot_be_stacked_to_outgrow_a_fraud_proof(registry, meter_operator, chain):
    """A colluding meter operator rotating a meter again and again within a period replaces the
    one waiting rotation each time: keyAt of a past period still answers at once."""
    now = current_period(chain)
    m = MeterSpec("rot-spam", ref.group_id("group:rot"), active_from=now - 20)
    registry.registerMeter(*m.register_args(), sender=meter_operator)
    for i in range(30):
        registry.rotateKey(m.meter_id, MeterSpec(f"rot-spam-{i}", m.group).address, 2**62 + i, sender=meter_operator)
    assert registry.keyAt(m.meter_id, now - 1) == m.address
    assert registry.keyAt(m.meter_id, 2**62 + 29) == MeterSpec("rot-spam-29", m.group).address
    assert registry.keyAt(m.meter_id, 2**62 + 28) == m.address  # only the last of the 30 waits


def test_key_rotation_needs_a_registered_meter_a_key_and_the_meter_operator_role(
        registry, meter_operator, admin, stranger, operators, chain):
    now = current_period(chain)
    m = MeterSpec("rot-auth", ref.group_id("group:rot"), active_from=now - 1)
    with ape.reverts(registry.UnknownMeter, meterId=m.meter_id):
        registry.rotateKey(m.meter_id, stranger.address, now + 1, sender=meter_operator)
    registry.registerMeter(*m.register_args(), sender=meter_operator)
    with ape.reverts(registry.InvalidMeter, field="key"):
        registry.rotateKey(m.meter_id, "0x" + "00" * 20, now + 1, sender=meter_operator)
    role = registry.METER_OPERATOR_ROLE()
    for caller in (stranger, operators[0], admin):
        with ape.reverts(registry.AccessControlUnauthorizedAccount, account=caller.address, neededRole=role):
            registry.rotateKey(m.meter_id, caller.address, now + 1, sender=caller)


def _prove_signature(ledger, tree, period, index, sender):
    return ledger.proveBadSignature(period, tree.group, leaf_struct(tree.leaves[index]), index, tree.proof(index),
                                    sender=sender)


def test_a_reading_signed_by_the_old_key_after_the_rotation_is_fraud(world, ledger, registry, stranger, chain):
    """A colluding quorum settles a reading signed by the rotated-out (say, stolen) key: anyone
    proves it; the new key's reading and the old key's before the rotation are no grounds."""
    group = ref.group_id("group:rot-fraud")
    meters = world.meters(2, group, prefix="rotf")
    now = current_period(chain)
    new = MeterSpec("rotf-new-key", group)
    registry.rotateKey(meters[0].meter_id, new.address, now + 1, sender=world.meter_operator)

    chain.pending_timestamp = (now + 1) * PERIOD_SECONDS + 10
    before = [world.leaf(meters[0], now, 5_000, 0), world.leaf(meters[1], now, 5_000, 0)]  # old key, its period
    tree = SumTree.from_leaves(sorted(before, key=lambda lf: lf.reading.meter_id))
    tree.group = group
    world.submit(tree, now, group)
    for i in range(2):
        with ape.reverts(ledger.NoFraud):
            _prove_signature(ledger, tree, now, i, stranger)
    world.pass_window()
    world.finalize(now, group)

    p = now + 1
    chain.pending_timestamp = max(chain.pending_timestamp, (p + 1) * PERIOD_SECONDS + 10)
    prev = {lf.reading.meter_id: lf for lf in before}
    stolen = world.leaf(meters[0], p, 6_000, 0, prev=prev[meters[0].meter_id])  # still the old key
    other = world.leaf(meters[1], p, 6_000, 0, prev=prev[meters[1].meter_id])
    tree = SumTree.from_leaves(sorted([stolen, other], key=lambda lf: lf.reading.meter_id))
    tree.group = group
    world.submit(tree, p, group)
    ids = [lf.reading.meter_id for lf in tree.leaves]
    with ape.reverts(ledger.NoFraud):
        _prove_signature(ledger, tree, p, ids.index(meters[1].meter_id), stranger)
    tx = _prove_signature(ledger, tree, p, ids.index(meters[0].meter_id), stranger)
    [ev] = tx.events
    assert (ev.event_name, ev.reason) == ("BatchRejected", BAD_SIGNATURE)


def test_the_new_key_settles_from_the_rotation_on(world, ledger, registry, stranger, chain):
    group = ref.group_id("group:rot-new")
    [m] = world.meters(1, group, prefix="rotn")
    now = current_period(chain)
    new = MeterSpec("rotn-new-key", group)
    registry.rotateKey(m.meter_id, new.address, now + 1, sender=world.meter_operator)
    chain.pending_timestamp = (now + 2) * PERIOD_SECONDS + 10
    leaf = world.leaf(m, now + 1, 7_000, 0, signer=new.private_key)
    tree = SumTree.from_leaves([leaf])
    tree.group = group
    world.submit(tree, now + 1, group)
    with ape.reverts(ledger.NoFraud):
        _prove_signature(ledger, tree, now + 1, 0, stranger)
    world.pass_window()
    world.finalize(now + 1, group)
    assert ledger.getBatch(now + 1, group).status == FINAL


def test_a_meter_exchange_moves_the_point_to_the_new_meter_from_its_period(registry, meter_operator, chain):
    now = current_period(chain)
    group = ref.group_id("group:exch")
    old = MeterSpec("exch-old", group, kind=2, active_from=now - 20)
    new = MeterSpec("exch-new", group)
    registry.registerMeter(*old.register_args(), sender=meter_operator)
    tx = registry.exchangeMeter(old.meter_id, new.meter_id, new.address, now, 0, 0, sender=meter_operator)
    assert [e.event_name for e in tx.events] == ["MeterDecommissioned", "MeterRegistered", "MeterExchanged"]
    ex = tx.events[2]
    assert (ex.pointId, ex.oldMeterId, ex.newMeterId, ex.period) == (old.meter_id, old.meter_id, new.meter_id, now)
    got = registry.getMeter(new.meter_id)
    assert (got.key, got.kind, got.groupId, got.activeFrom, got.activeUntil, got.baselineImportMwh) == \
        (new.address, 2, group, now, 2**64 - 1, 0)
    assert registry.getMeter(old.meter_id).activeUntil == now  # both settle in the exchange period
    assert registry.meteringPoint(new.meter_id) == registry.meteringPoint(old.meter_id) == old.meter_id
    third = MeterSpec("exch-third", group)
    registry.registerMeter(*MeterSpec("exch-third", group, active_from=now - 1).register_args(), sender=meter_operator)
    with ape.reverts(registry.NotShortening, meterId=old.meter_id, lastPeriod=now):  # a replay
        registry.exchangeMeter(old.meter_id, new.meter_id, new.address, now, 0, 0, sender=meter_operator)
    with ape.reverts(registry.MeterAlreadyRegistered, meterId=new.meter_id):  # the new meter twice
        registry.exchangeMeter(third.meter_id, new.meter_id, new.address, now + 4, 0, 0, sender=meter_operator)
    # exchanged again later: still the household's one point
    fourth = MeterSpec("exch-fourth", group)
    registry.exchangeMeter(new.meter_id, fourth.meter_id, fourth.address, now + 4, 0, 0, sender=meter_operator)
    assert registry.meteringPoint(fourth.meter_id) == old.meter_id


def test_a_meter_exchange_is_never_retroactive_nor_by_another_role(
        registry, meter_operator, admin, stranger, operators, chain):
    now = current_period(chain)
    group = ref.group_id("group:exch")
    old = MeterSpec("exch-r-old", group, active_from=now - 20)
    new = MeterSpec("exch-r-new", group)
    with ape.reverts(registry.UnknownMeter, meterId=old.meter_id):
        registry.exchangeMeter(old.meter_id, new.meter_id, new.address, now, 0, 0, sender=meter_operator)
    registry.registerMeter(*old.register_args(), sender=meter_operator)
    with ape.reverts(registry.Retroactive, period=now - 1, currentPeriod=now):
        registry.exchangeMeter(old.meter_id, new.meter_id, new.address, now - 1, 0, 0, sender=meter_operator)
    late = MeterSpec("exch-r-late", group, active_from=now + 10)
    registry.registerMeter(*late.register_args(), sender=meter_operator)
    with ape.reverts(registry.NotShortening, meterId=late.meter_id, lastPeriod=now + 2):  # not active then
        registry.exchangeMeter(late.meter_id, new.meter_id, new.address, now + 2, 0, 0, sender=meter_operator)
    role = registry.METER_OPERATOR_ROLE()
    for caller in (stranger, operators[0], admin):
        with ape.reverts(registry.AccessControlUnauthorizedAccount, account=caller.address, neededRole=role):
            registry.exchangeMeter(old.meter_id, new.meter_id, new.address, now, 0, 0, sender=caller)


def test_the_point_energy_is_continuous_across_an_exchange_and_the_old_meter_cannot_settle_after(
        world, ledger, registry, stranger, chain):
    """Both meters settle in the exchange period: the old up to its final reading, the new from
    zero. A colluding quorum that settles the old meter again afterwards is proven false."""
    group = ref.group_id("group:exch-settle")
    [old] = world.meters(1, group, prefix="exs", baseline_import=1_000_000)
    now = current_period(chain)
    new = MeterSpec("exs-new", group, active_from=now)
    registry.exchangeMeter(old.meter_id, new.meter_id, new.address, now, 0, 0, sender=world.meter_operator)
    chain.pending_timestamp = (now + 1) * PERIOD_SECONDS + 10
    final_old = world.leaf(old, now, 1_004_000, 0)  # the old meter's final reading: 4 kWh since its baseline
    first_new = world.leaf(new, now, 1_500, 0)  # the new one from zero: 1.5 kWh after the swap
    tree = SumTree.from_leaves(sorted([final_old, first_new], key=lambda lf: lf.reading.meter_id))
    tree.group = group
    world.submit(tree, now, group)
    for i in range(2):
        with ape.reverts(ledger.NoFraud):
            _prove(world, ledger, tree, now, i, stranger)
    world.pass_window()
    world.finalize(now, group)
    b = ledger.getBatch(now, group)
    assert b.status == FINAL and b.totalImportMwh == 4_000 + 1_500  # the point's energy: both meters' deltas

    p = now + 1
    chain.pending_timestamp = max(chain.pending_timestamp, (p + 1) * PERIOD_SECONDS + 10)
    again = world.leaf(old, p, 1_009_000, 0, prev=final_old)
    tree = SumTree.from_leaves([again])
    tree.group = group
    world.submit(tree, p, group)
    tx = _prove(world, ledger, tree, p, 0, stranger)
    assert tx.events[0].event_name == "BatchRejected" and tx.events[0].reason == UNKNOWN_METER
