"""MeterRegistry: meter registration, roles, operator set and quorum."""
import ape
import pytest
from settlement_builders import ADMIN_DELAY_S, GROUP_A, MeterSpec

MAX = 2**64 - 1


def test_register_and_read_back(registry, meter_operator):
    m = MeterSpec("reg-1", GROUP_A, kind=1, active_from=100, active_until=200, baseline_import=5, baseline_export=7)
    tx = registry.registerMeter(*m.register_args(), sender=meter_operator)
    got = registry.getMeter(m.meter_id)
    assert (got.key, got.kind, got.groupId, got.activeFrom, got.activeUntil, got.baselineImportMwh,
            got.baselineExportMwh) == (m.address, 1, GROUP_A, 100, 200, 5, 7)
    [ev] = tx.events
    assert ev.event_name == "MeterRegistered" and ev.meterId == m.meter_id and ev.key == m.address


def test_register_twice_reverts(registry, meter_operator):
    m = MeterSpec("reg-2", GROUP_A)
    registry.registerMeter(*m.register_args(), sender=meter_operator)
    with ape.reverts(registry.MeterAlreadyRegistered, row=0, meterId=m.meter_id):
        registry.registerMeter(*m.register_args(), sender=meter_operator)


@pytest.mark.parametrize("field,change", [
    ("meterId", lambda a: (b"\0" * 32, *a[1:])),
    ("key", lambda a: (a[0], "0x" + "00" * 20, *a[2:])),
    ("kind", lambda a: (*a[:2], 5, *a[3:])),
    ("groupId", lambda a: (*a[:3], b"\0" * 32, *a[4:])),
    ("activeWindow", lambda a: (*a[:4], 0, *a[5:])),
    ("activeWindow", lambda a: (*a[:4], 10, 9, *a[6:])),
])
def test_register_invalid_field_reverts_naming_it(registry, meter_operator, field, change):
    args = change(MeterSpec("reg-bad", GROUP_A, active_from=10).register_args())
    with ape.reverts(registry.InvalidMeter, row=0, field=field):
        registry.registerMeter(*args, sender=meter_operator)
    # the same row third in a batch: the whole batch reverts, naming row 2
    good = [MeterSpec(f"reg-bad-batch-{i}", GROUP_A).register_args() for i in range(2)]
    with ape.reverts(registry.InvalidMeter, row=2, field=field):
        registry.registerMeters(*_batch([*good, args]), sender=meter_operator)
    assert all(registry.registeredAt(a[0]) == 0 for a in good)  # all or none


def _batch(rows: list[tuple]) -> tuple[list, list]:
    """registerMeters' arguments from registerMeter argument tuples."""
    return [r[0] for r in rows], [r[1:] for r in rows]


def test_register_meters_in_one_transaction(registry, meter_operator, chain):
    specs = [MeterSpec(f"batch-{i}", GROUP_A, kind=i % 5, active_from=10 + i, baseline_import=i, baseline_export=2 * i)
             for i in range(40)]
    tx = registry.registerMeters(*_batch([m.register_args() for m in specs]), sender=meter_operator)
    assert [e.meterId for e in tx.events if e.event_name == "MeterRegistered"] == [m.meter_id for m in specs]
    at = chain.blocks[tx.block_number].timestamp
    got = registry.getMeters([m.meter_id for m in specs])
    for m, g in zip(specs, got):
        assert (g.key, g.kind, g.groupId, g.activeFrom, g.activeUntil, g.baselineImportMwh, g.baselineExportMwh) == \
            m.register_args()[1:]
        assert registry.registeredAt(m.meter_id) == at


def test_register_meters_is_all_or_none_and_names_the_duplicate_row(registry, meter_operator):
    first = MeterSpec("batch-dup-0", GROUP_A)
    rows = [first.register_args(), MeterSpec("batch-dup-1", GROUP_A).register_args(), first.register_args()]
    with ape.reverts(registry.MeterAlreadyRegistered, row=2, meterId=first.meter_id):
        registry.registerMeters(*_batch(rows), sender=meter_operator)
    assert registry.registeredAt(first.meter_id) == 0
    registry.registerMeters(*_batch(rows[:2]), sender=meter_operator)
    # a replay of the same batch registers nothing again
    with ape.reverts(registry.MeterAlreadyRegistered, row=0, meterId=first.meter_id):
        registry.registerMeters(*_batch(rows[:2]), sender=meter_operator)
    with ape.reverts(registry.LengthMismatch, meterIds=2, meters=1):
        registry.registerMeters([rows[0][0], rows[1][0]], [rows[0][1:]], sender=meter_operator)


def test_unregistered_meter_reads_empty(registry):
    assert registry.getMeter(MeterSpec("nobody", GROUP_A).meter_id).key == "0x" + "00" * 20


def test_operator_set_and_quorum(registry, operators, admin, accounts):
    assert set(registry.operators()) == {op.address for op in operators}
    assert registry.quorum() == 3
    new = accounts[8]
    tx = registry.addOperator(new, sender=admin)
    assert registry.isOperator(new) and len(registry.operators()) == 6
    assert any(e.event_name == "RoleGranted" for e in tx.events)
    registry.setQuorum(6, sender=admin)
    with ape.reverts(registry.InvalidQuorum, quorum=7, operatorCount=6):
        registry.setQuorum(7, sender=admin)
    with ape.reverts(registry.InvalidQuorum, quorum=0, operatorCount=6):
        registry.setQuorum(0, sender=admin)
    # removing an operator may not leave fewer than quorum, whichever way it is done
    with ape.reverts(registry.QuorumUnreachable, quorum=6, operatorCountAfter=5):
        registry.removeOperator(new, sender=admin)
    with ape.reverts(registry.QuorumUnreachable):
        registry.revokeRole(registry.SETTLEMENT_OPERATOR_ROLE(), new, sender=admin)
    with ape.reverts(registry.QuorumUnreachable):
        registry.renounceRole(registry.SETTLEMENT_OPERATOR_ROLE(), new, sender=new)
    tx = registry.setQuorum(3, sender=admin)
    assert tx.events[0].event_name == "QuorumSet" and tx.events[0].quorum == 3
    registry.removeOperator(new, sender=admin)
    assert not registry.isOperator(new)


def test_unauthorized_callers(registry, stranger, meter_operator, operators):
    m = MeterSpec("reg-unauth", GROUP_A)
    role = registry.METER_OPERATOR_ROLE()
    admin_role = registry.DEFAULT_ADMIN_ROLE()
    with ape.reverts(registry.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=role):
        registry.registerMeter(*m.register_args(), sender=stranger)
    # a settlement operator is not a meter operator, and a meter operator is not an admin
    with ape.reverts(registry.AccessControlUnauthorizedAccount, account=operators[0].address, neededRole=role):
        registry.registerMeter(*m.register_args(), sender=operators[0])
    for caller in (stranger, operators[0]):
        with ape.reverts(registry.AccessControlUnauthorizedAccount, account=caller.address, neededRole=role):
            registry.registerMeters(*_batch([m.register_args()]), sender=caller)
    for fn, args in [(registry.addOperator, (stranger,)), (registry.removeOperator, (operators[0],)),
                     (registry.setQuorum, (1,)), (registry.grantRole, (role, stranger)),
                     (registry.revokeRole, (role, meter_operator))]:
        with ape.reverts(registry.AccessControlUnauthorizedAccount, account=meter_operator.address,
                         neededRole=admin_role):
            fn(*args, sender=meter_operator)


def test_the_admin_is_handed_on_in_two_steps_after_the_delay(project, admin, accounts, stranger, chain):
    reg = admin.deploy(project.MeterRegistry, admin, ADMIN_DELAY_S, 900)
    new_admin, admin_role = accounts[8], reg.DEFAULT_ADMIN_ROLE()
    assert reg.defaultAdmin() == admin.address and reg.defaultAdminDelay() == ADMIN_DELAY_S
    with ape.reverts(reg.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=admin_role):
        reg.beginDefaultAdminTransfer(stranger, sender=stranger)
    # the one-step ways to a second admin are closed
    with ape.reverts(reg.AccessControlEnforcedDefaultAdminRules):
        reg.grantRole(admin_role, new_admin, sender=admin)
    tx = reg.beginDefaultAdminTransfer(new_admin, sender=admin)
    [scheduled] = [e for e in tx.events if e.event_name == "DefaultAdminTransferScheduled"]
    accept_at = chain.blocks[tx.block_number].timestamp + ADMIN_DELAY_S
    assert scheduled.newAdmin == new_admin.address and scheduled.acceptSchedule == accept_at
    with ape.reverts(reg.AccessControlEnforcedDefaultAdminDelay, schedule=accept_at):
        reg.acceptDefaultAdminTransfer(sender=new_admin)  # too early
    chain.pending_timestamp = accept_at + 1
    with ape.reverts(reg.AccessControlInvalidDefaultAdmin, defaultAdmin=stranger.address):
        reg.acceptDefaultAdminTransfer(sender=stranger)  # not the one named
    tx = reg.acceptDefaultAdminTransfer(sender=new_admin)
    assert {e.event_name for e in tx.events} == {"RoleRevoked", "RoleGranted"}
    assert reg.defaultAdmin() == new_admin.address and not reg.hasRole(admin_role, admin)
    with ape.reverts(reg.AccessControlUnauthorizedAccount, account=admin.address, neededRole=admin_role):
        reg.addOperator(stranger, sender=admin)  # the old admin governs nothing any more
    reg.addOperator(stranger, sender=new_admin)
    # a replayed acceptance finds no transfer pending
    with ape.reverts(reg.AccessControlInvalidDefaultAdmin, defaultAdmin=new_admin.address):
        reg.acceptDefaultAdminTransfer(sender=new_admin)


def test_a_scheduled_admin_transfer_can_be_cancelled(project, admin, accounts, stranger, chain):
    reg = admin.deploy(project.MeterRegistry, admin, ADMIN_DELAY_S, 900)
    tx = reg.beginDefaultAdminTransfer(stranger, sender=admin)
    with ape.reverts(reg.AccessControlUnauthorizedAccount, account=stranger.address,
                     neededRole=reg.DEFAULT_ADMIN_ROLE()):
        reg.cancelDefaultAdminTransfer(sender=stranger)
    reg.cancelDefaultAdminTransfer(sender=admin)
    chain.pending_timestamp = chain.blocks[tx.block_number].timestamp + ADMIN_DELAY_S + 1
    with ape.reverts(reg.AccessControlInvalidDefaultAdmin, defaultAdmin=stranger.address):
        reg.acceptDefaultAdminTransfer(sender=stranger)
    assert reg.defaultAdmin() == admin.address


def test_every_change_of_the_operator_set_is_an_event(project, admin, accounts):
    reg = admin.deploy(project.MeterRegistry, admin, ADMIN_DELAY_S, 900)
    op = accounts[8]
    granted, epoch = reg.addOperator(op, sender=admin).events  # and a new operator epoch
    assert (granted.event_name, granted.account, granted.role) == ("RoleGranted", op.address,
                                                                    reg.SETTLEMENT_OPERATOR_ROLE())
    assert (epoch.event_name, epoch.epoch, epoch.operators) == ("OperatorEpochStarted", 1, [op.address])
    revoked, epoch = reg.removeOperator(op, sender=admin).events
    assert (revoked.event_name, revoked.account, epoch.epoch, epoch.operators) == ("RoleRevoked", op.address, 2, [])
