"""An auditor rebuilds the ledger's and a grid's state from their event logs alone."""
from settlement_builders import GROUP_A, GROUP_B, SumTree, leaf_struct, ref
from test_grid import CONSUMERS, PRODUCERS, settle_street, street  # noqa: F401 (fixture)


def test_ledger_state_from_logs(world, ledger, stranger):
    p = world.period
    a = world.meters(3, GROUP_A, prefix="audit-a")
    b = world.meters(2, GROUP_B, prefix="audit-b")
    world.settle([world.leaf(m, p, 100 + i, i) for i, m in enumerate(a)], p, GROUP_A)
    bad = SumTree.from_leaves([world.leaf(m, p, 50, 0, signer=b"\x66" * 32) for m in b])
    bad.group = GROUP_B
    world.submit(bad, p, GROUP_B)
    ledger.proveBadSignature(p, GROUP_B, leaf_struct(bad.leaves[0]), 0, bad.proof(0), sender=stranger)
    good = SumTree.from_leaves([world.leaf(m, p, 60, 0) for m in b])
    world.submit(good, p, GROUP_B)

    blocks = (0, world.chain.blocks.head.number + 1)
    state, rejected_roots, rejected_headers, last_final = {}, set(), set(), {}
    logs = [*ledger.BatchSubmitted.range(*blocks), *ledger.BatchFinalized.range(*blocks),
            *ledger.BatchRejected.range(*blocks)]
    logs.sort(key=lambda e: (e.block_number, e.log_index))
    for e in logs:
        key = (e.period, e.groupId)
        if e.event_name == "BatchSubmitted":
            state[key] = [e.root, e.totalImportMwh, e.totalExportMwh, e.count, 1]
        elif e.event_name == "BatchFinalized":
            state[key][4] = 2
            last_final[e.groupId] = e.period
        else:
            state[key][4] = 3
            rejected_roots.add(e.root)
            rejected_headers.add((e.period, e.groupId, *state[key][:4]))
    for (period, group), (root, imp, exp, count, status) in state.items():
        onchain = ledger.getBatch(period, group)
        assert (onchain.root, onchain.totalImportMwh, onchain.totalExportMwh, onchain.count, onchain.status) == (
            root, imp, exp, count, status)
    assert state[(p, GROUP_B)][4] == 1 and rejected_roots == {bad.root[0]}
    assert all(ledger.headerRejected(ref.BatchHeader(*h, 0).content_hash()) for h in rejected_headers)
    assert all(ledger.lastFinalPeriod(g) == period for g, period in last_final.items())


def test_grid_state_from_logs(world, street, operators):
    p = world.period
    settle_street(world, p, [(3700, 0)])
    tx = street.rollUp(p, sender=operators[0])
    [done] = [e for e in tx.events if e.event_name == "PeriodRolledUp"]
    r = street.getRollup(p)
    assert (done.injected, done.withdrawn, done.fromUpstream, done.toUpstream, done.losses, done.imbalance,
            done.localAllocated) == (r.injected, r.withdrawn, r.fromUpstream, r.toUpstream, r.losses, r.imbalance,
                                     r.localAllocated)
    flows = {e.memberId: e for e in tx.events if e.event_name == "MemberFlowRecorded"}
    received, supplied = {}, {}
    for e in tx.events:
        if e.event_name == "Allocated":
            assert street.origin(p, e.consumer, e.producer) == e.mwh
            received[e.consumer] = received.get(e.consumer, 0) + e.mwh
            supplied[e.producer] = supplied.get(e.producer, 0) + e.mwh
    for member, e in flows.items():
        f = street.memberFlow(p, member)
        assert (f.injected, f.withdrawn, f.localReceived, f.localSupplied) == (
            e.injected, e.withdrawn, received.get(member, 0), supplied.get(member, 0))
    assert received[CONSUMERS] > 0 and supplied[PRODUCERS] > 0
