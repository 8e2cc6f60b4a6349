"""The audit reads each meter point's window as the registry's events leave it: registered, then
decommissioned from a given period, its key rotated from another."""
from __future__ import annotations

from eth_account import Account

from rust_core.wire import meter_label_id
from scripts._audit import read_chain
from scripts._deployment import ApeTransactor, MeterRow, NetworkSpec, deploy, register


def test_the_audit_sees_a_decommissioned_window_and_a_rotated_key(accounts, chain):
    admin = ApeTransactor(accounts[0])
    dep = deploy(admin, NetworkSpec(900, 600, 1, (accounts[1].address,), (accounts[0].address,)))
    now = chain.pending_timestamp // 900
    rows = [MeterRow(f"sml:00aa{i:08x}", Account.create().address, "consumption", "audited", now - 3, 0, 0)
            for i in range(2)]
    register(admin, dep, rows)
    gone = meter_label_id(rows[0].meter)
    last = chain.pending_timestamp // 900 + 1
    admin.transact("MeterRegistry", dep.registry, "decommission", gone, last)
    kept = meter_label_id(rows[1].meter)
    new_key = Account.create().address
    admin.transact("MeterRegistry", dep.registry, "rotateKey", kept, new_key, last + 3)
    meters = read_chain(chain.provider.web3, dep).meters
    assert meters[gone].active_until == last
    assert meters[kept].active_until == 2**64 - 1
    assert meters[kept].key_at(last + 2).hex() == rows[1].key[2:].lower()
    assert meters[kept].key_at(last + 3).hex() == new_key[2:].lower()
