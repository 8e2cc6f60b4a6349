"""The audit reads each meter point's window as the registry's events leave it: registered, then
decommissioned from a given period, its key rotated from another, its meter exchanged."""
from __future__ import annotations

import secrets

from eth_account import Account

import rust_core
from node.chain import Chain
from rust_core.wire import Leaf, group_id, meter_label_id
from scripts._audit import audit, read_chain
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


def test_the_audit_sums_a_point_across_its_meter_exchange(accounts, chain):
    """A household's meter is exchanged in period P: both settle in P (the old one's final
    reading, the new one from zero), the new one after. The audit passes and the point's energy
    is the sum of both meters' deltas."""
    admin, op = ApeTransactor(accounts[0]), accounts[1]
    dep = deploy(admin, NetworkSpec(900, 600, 1, (op.address,), (accounts[0].address,)))
    p = chain.pending_timestamp // 900 + 1
    chain.pending_timestamp = p * 900 + 300
    old_key, new_key = secrets.token_bytes(32), secrets.token_bytes(32)
    old_row = MeterRow("sml:00bb00000001", Account.from_key(old_key).address, "consumption", "exch", p - 2,
                       1_000_000, 0)
    register(admin, dep, [old_row])
    old, new = meter_label_id(old_row.meter), meter_label_id("sml:00bb00000002")
    admin.transact("MeterRegistry", dep.registry, "exchangeMeter", old, new, Account.from_key(new_key).address, p, 0, 0)
    ledger = Chain(chain.provider.uri, dep.registry, dep.ledger, bytes.fromhex(op.private_key[2:]))
    group = group_id("exch")

    def leaf(meter: bytes, key: bytes, period: int, imp: int, prev: tuple[int, int]) -> Leaf:
        r = (meter, period, period * 900 + 600, imp, 0)
        [sig] = rust_core.sign_readings(ledger.domain_separator, [r], [key])
        return Leaf(*r, prev[0], prev[1], 0, sig)

    export = {}
    for period, leaves in ((p, [leaf(old, old_key, p, 1_004_000, (p - 3, 1_000_000)),  # the old meter's final reading
                                leaf(new, new_key, p, 1_500, (p - 1, 0))]),  # the new one from zero
                           (p + 1, [leaf(new, new_key, p + 1, 2_700, (p, 1_500))])):
        leaves.sort(key=lambda lf: lf.meter_id)
        root = rust_core.MerkleSumTree(leaves).root
        header = (period, group, root[0], root[1], root[2], len(leaves), ledger.operator_set().epoch)
        chain.pending_timestamp = max(chain.pending_timestamp, (period + 1) * 900 + 10)
        ledger.submit_batch(header, [ledger.signer.sign_digest(rust_core.batch_digest(ledger.domain_separator, header))])
        chain.pending_timestamp += 601
        ledger.finalize(period, group)
        export[(period, group, root[0])] = leaves
    result = audit(read_chain(chain.provider.web3, dep), export)
    assert result.ok, result.failures
    assert result.point_energy == {old: (4_000 + 1_500 + 1_200, 0)}  # one point, every delta of both meters
