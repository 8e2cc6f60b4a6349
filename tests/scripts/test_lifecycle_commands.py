"""`ape run meter ...` and `ape run operators`: a meter point operator decommissions, rotates and
exchanges meters, the admin changes the operator set, on a real chain; every refusal names the
registry's error and sends nothing (the contracts' own rules: tests/contracts)."""
from __future__ import annotations

import click
import pytest
from eth_account import Account

from rust_core.wire import meter_label_id
from scripts import meter as meter_cli
from scripts import operators as operators_cli
from scripts._deployment import ApeTransactor, MeterRow, NetworkSpec, SpecError, contract_at, deploy, register
from scripts._lifecycle import (
    ChangeRefused,
    change_operators,
    decommission,
    exchange,
    meter_ref,
    operator_epoch,
    rotate_key,
)

PERIOD_S = 900


def op(account) -> bytes:
    return bytes.fromhex(account.address[2:])


@pytest.fixture
def network(accounts, chain):
    admin = accounts[0]  # also the meter point operator: the commands' default account
    dep = deploy(ApeTransactor(admin), NetworkSpec(PERIOD_S, 600, 1, (accounts[1].address, accounts[2].address),
                                                   (admin.address,)))
    now = chain.pending_timestamp // PERIOD_S
    register(ApeTransactor(admin), dep, [
        MeterRow(f"sml:{i:012x}", Account.create().address, "consumption", "street-1", now + 1, 0, 0) for i in range(3)])
    registry = contract_at(ApeTransactor(admin).web3, "MeterRegistry", dep.registry)
    return ApeTransactor(admin), dep, registry, now


def test_decommission_closes_the_window_and_refuses_the_past_and_strangers(network, accounts):
    operator, dep, registry, now = network
    meter = meter_label_id("sml:000000000000")
    decommission(operator, dep, meter_ref("sml:000000000000"), now + 5)
    assert registry.functions.getMeter(meter).call()[4] == now + 5
    with pytest.raises(ChangeRefused, match=rf"decommission: Retroactive\({now - 1}, {now}\)"):
        decommission(operator, dep, meter, now - 1)
    stranger = ApeTransactor(accounts[7])
    sent = operator.web3.eth.get_transaction_count(stranger.address)
    with pytest.raises(ChangeRefused, match=rf"AccessControlUnauthorizedAccount\({stranger.address}, 0x[0-9a-f]{{64}}\)"):
        decommission(stranger, dep, meter, now + 3)
    assert operator.web3.eth.get_transaction_count(stranger.address) == sent  # refused before anything was sent
    assert registry.functions.getMeter(meter).call()[4] == now + 5
    with pytest.raises(ChangeRefused, match=r"UnknownMeter"):
        decommission(operator, dep, meter_ref("sml:0000000000ff"), now + 5)


def test_rotate_key_takes_effect_after_the_current_period(network, accounts):
    operator, dep, registry, now = network
    meter = meter_ref("sml:000000000001")
    old_key = registry.functions.keyAt(meter, now + 3).call()
    new_key = Account.create().address
    with pytest.raises(ChangeRefused, match=rf"rotateKey: Retroactive\({now}, {now}\)"):
        rotate_key(operator, dep, meter, new_key, now)
    with pytest.raises(ChangeRefused, match="AccessControlUnauthorizedAccount"):
        rotate_key(ApeTransactor(accounts[7]), dep, meter, new_key, now + 3)
    rotate_key(operator, dep, meter, new_key.lower(), now + 3)
    assert [registry.functions.keyAt(meter, p).call() for p in (now + 2, now + 3)] == [old_key, new_key]
    with pytest.raises(SpecError, match="key 'not-a-key' is not an address"):
        rotate_key(operator, dep, meter, "not-a-key", now + 4)


def test_exchange_moves_the_point_once_and_a_replay_is_refused(network, accounts):
    operator, dep, registry, now = network
    old, new = meter_ref("sml:000000000002"), meter_ref("dsmr:E0000000000042")
    key = Account.create().address
    with pytest.raises(ChangeRefused, match="AccessControlUnauthorizedAccount"):
        exchange(ApeTransactor(accounts[7]), dep, old, new, key, now + 2)
    exchange(operator, dep, old, new, key, now + 2, baseline_import_mwh=1500)
    assert registry.functions.meteringPoint(new).call() == old
    assert registry.functions.getMeter(old).call()[4] == now + 2
    assert tuple(registry.functions.getMeter(new).call()[3:6]) == (now + 2, 2**64 - 1, 1500)
    with pytest.raises(ChangeRefused, match="exchangeMeter: MeterAlreadyRegistered|exchangeMeter: NotShortening"):
        exchange(operator, dep, old, new, key, now + 2)  # the same exchange again
    with pytest.raises(ChangeRefused, match=rf"exchangeMeter: NotShortening\(0x{new.hex()}, {now - 1}, {now + 2}, "):
        exchange(operator, dep, new, meter_ref("dsmr:E0000000000043"), key, now - 1)  # before the new meter's window


def test_operators_change_as_one_epoch_by_the_admin_only(network, accounts):
    admin, dep, registry, _ = network
    before = operator_epoch(admin.web3, dep)
    assert (before.operators, before.quorum) == (sorted(op(a) for a in accounts[1:3]), 1)
    joining = accounts[3].address
    with pytest.raises(ChangeRefused, match="AccessControlUnauthorizedAccount"):
        change_operators(ApeTransactor(accounts[1]), dep, [joining], [], 2)
    with pytest.raises(ChangeRefused, match=rf"NotAnOperator\({accounts[4].address}\)"):
        change_operators(admin, dep, [joining], [accounts[4].address], 2)
    with pytest.raises(ChangeRefused, match=r"InvalidQuorum\(4, 3\)"):
        change_operators(admin, dep, [joining], [], 4)
    assert operator_epoch(admin.web3, dep) == before  # refused changes start no epoch
    after = change_operators(admin, dep, [joining], [accounts[1].address], 2)
    assert (after.epoch, after.operators, after.quorum) == (before.epoch + 1, sorted(op(a) for a in (accounts[2], accounts[3])), 2)
    with pytest.raises(ChangeRefused, match=rf"AlreadyAnOperator\({joining}\)"):
        change_operators(admin, dep, [joining], [], 2)  # the same change again


def test_the_commands_report_the_change_and_name_a_refusal(network, accounts, tmp_path, capsys):
    admin, dep, registry, now = network
    dep_path = tmp_path / "deployment.json"
    dep.save(dep_path)
    key = Account.create().address
    meter_cli.cli.commands["rotate-key"].callback(dep_path=dep_path, meter="sml:000000000001", key=key,
                                                  from_period=now + 4, alias=None)
    assert f"sml:000000000001 signs with {key} from period {now + 4}" in capsys.readouterr().out
    assert registry.functions.keyAt(meter_ref("sml:000000000001"), now + 4).call() == key
    with pytest.raises(click.ClickException, match=r"decommission: Retroactive"):
        meter_cli.cli.commands["decommission"].callback(dep_path=dep_path, meter="sml:000000000000",
                                                        last_period=now - 1, alias=None)
    with pytest.raises(click.ClickException, match=r"meter 'sml000': expected scheme:identity"):
        meter_cli.cli.commands["decommission"].callback(dep_path=dep_path, meter="sml000", last_period=now + 1,
                                                        alias=None)
    with pytest.raises(click.ClickException, match="baseline_import_wh is -1 Wh: a register cannot be negative"):
        meter_cli.cli.commands["exchange"].callback(
            dep_path=dep_path, old="sml:000000000002", new="sml:0000000000aa", key=key, period=now + 2,
            baseline_import_wh="-1", baseline_export_wh="0", alias=None)
    meter_cli.cli.commands["exchange"].callback(
        dep_path=dep_path, old="sml:000000000002", new="sml:0000000000aa", key=key, period=now + 2,
        baseline_import_wh="2.5", baseline_export_wh="0", alias=None)
    assert registry.functions.getMeter(meter_ref("sml:0000000000aa")).call()[5] == 2500
    operators_cli.cli.callback(dep_path=dep_path, joining=(accounts[3].address,), leaving=(), quorum=None,
                               alias=None)
    out = capsys.readouterr().out
    assert "was epoch" in out and " 1 of 3 " in out
