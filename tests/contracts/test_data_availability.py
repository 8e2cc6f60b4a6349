"""Issue 11 item 4: data availability challenges. A colluding 3-of-5 quorum withholds, reveals
another tree, reveals out of order or with duplicates: its batch is rejected. A stranger cannot
challenge, and no registered challenger can get an honest batch rejected (last-second
challenge, second challenge, garbage reveals of its own)."""
import itertools

import ape
import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from settlement_builders import (
    CHALLENGE_WINDOW,
    GROUP_A,
    RESPONSE_TIME,
    MeterSpec,
    SumTree,
    cosign,
    header_struct,
    inner_preimage,
    leaf_struct,
    leaf_words,
    parent_hash,
    ref,
)

from node.availability import revealed_leaves

STATUS_PENDING, STATUS_FINAL, STATUS_REJECTED = 1, 2, 3
REASON_WITHHELD = 12
_labels = itertools.count()


@pytest.fixture(scope="module")
def auditor(accounts, registry, admin):
    a = accounts[8]
    registry.grantRole(registry.AUDITOR_ROLE(), a, sender=admin)
    return a


def reveal(ledger, period, leaves, sender, chunk=3, group=GROUP_A):
    """Posts `leaves` in chunks; returns the receipts."""
    return [ledger.revealLeaves(period, group, i, [leaf_struct(lf) for lf in leaves[i:i + chunk]], sender=sender)
            for i in range(0, len(leaves), chunk)]


def shown(ledger, chain, receipt) -> list:
    """The leaves a reveal transaction showed: its LeavesRevealed log carries their count and
    keccak256 only; the leaves are read back from the transaction's calldata."""
    abi = [a.model_dump(mode="json", by_alias=True) for a in ledger.contract_type.abi]
    led = chain.provider.web3.eth.contract(address=ledger.address, abi=abi)
    out = []
    for e in receipt.events:
        if e.event_name == "LeavesRevealed":
            out += revealed_leaves(led, receipt.txn_hash, e.firstIndex, e.count, e.chunkHash)
    return out


def batch_of(world, n, prefix="da", **kw):
    meters = world.meters(n, prefix=f"{prefix}{next(_labels)}-")
    return meters, [world.leaf(m, world.period, 1000 + 7 * i, 3 * i) for i, m in enumerate(meters)]


def test_withheld_batch_is_rejected_after_the_response_time(world, ledger, auditor, stranger, chain):
    _, leaves = batch_of(world, 5)
    world.submit(SumTree.from_leaves(leaves), world.period)  # 3 colluders, leaves never published
    tx = ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    respond_by = tx.events[0].respondBy
    assert respond_by == chain.blocks.head.timestamp + RESPONSE_TIME
    with ape.reverts(ledger.ResponseTimeOpen):
        ledger.rejectUnrevealed(world.period, GROUP_A, sender=stranger)
    world.pass_window()
    with ape.reverts(ledger.NotRevealed):
        world.finalize(world.period)
    tx = ledger.rejectUnrevealed(world.period, GROUP_A, sender=stranger)  # anyone, once the time is over
    assert tx.events[0].reason == REASON_WITHHELD and world.batch(world.period).status == STATUS_REJECTED
    with ape.reverts(ledger.BatchNotPending):
        reveal(ledger, world.period, leaves, world.operators[0])


def test_honest_batch_is_revealed_in_chunks_and_finalizes(world, ledger, meter_operator, stranger, chain):
    _, leaves = batch_of(world, 7)
    world.submit(SumTree.from_leaves(leaves), world.period)
    ledger.challengeAvailability(world.period, GROUP_A, sender=meter_operator)
    receipts = reveal(ledger, world.period, leaves, world.operators[1], chunk=3)
    chunks = [e for r in receipts for e in r.events if e.event_name == "LeavesRevealed"]
    assert [c.firstIndex for c in chunks] == [0, 3, 6]
    assert [c.count for c in chunks] == [3, 3, 1]
    assert [lf.struct() for r in receipts for lf in shown(ledger, chain, r)] == [leaf_struct(lf) for lf in leaves]
    abi = [a.model_dump(mode="json", by_alias=True) for a in ledger.contract_type.abi]
    led = chain.provider.web3.eth.contract(address=ledger.address, abi=abi)
    with pytest.raises(ValueError, match="chunk hash"):  # the log binds its transaction's chunk
        revealed_leaves(led, receipts[0].txn_hash, 0, 3, b"\x00" * 32)
    revealed = [e for e in receipts[-1].events if e.event_name == "BatchRevealed"]
    assert revealed and revealed[0].revealer == world.operators[1]
    assert ledger.availabilityChallenge(world.period, GROUP_A).revealed
    with ape.reverts(ledger.AlreadyRevealed):
        ledger.rejectUnrevealed(world.period, GROUP_A, sender=stranger)
    with ape.reverts(ledger.AlreadyRevealed):
        reveal(ledger, world.period, leaves, world.operators[2])
    world.pass_window()
    world.finalize(world.period)
    assert world.batch(world.period).status == STATUS_FINAL


def test_challenge_at_the_last_second_leaves_the_full_response_time(world, ledger, auditor, chain):
    _, leaves = batch_of(world, 4)
    world.submit(SumTree.from_leaves(leaves), world.period)
    submitted = world.batch(world.period).submittedAt
    chain.pending_timestamp = submitted + CHALLENGE_WINDOW - 1
    tx = ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    respond_by = tx.events[0].respondBy
    chain.pending_timestamp = respond_by - 1
    tx = reveal(ledger, world.period, leaves, world.operators[0], chunk=4)[-1]
    closes_at = [e for e in tx.events if e.event_name == "BatchRevealed"][0].closesAt
    assert closes_at == respond_by - 1 + RESPONSE_TIME  # time to prove fraud in the revealed data
    chain.pending_timestamp = closes_at - 1
    with ape.reverts(ledger.ChallengeWindowOpen):
        world.finalize(world.period)
    chain.pending_timestamp = closes_at
    world.finalize(world.period)
    assert world.batch(world.period).status == STATUS_FINAL


def test_revealed_forgery_is_still_disproven_by_a_fraud_proof(world, ledger, auditor, stranger, chain):
    """The reveal shows the data; a forged signature in it is rejected after the original window."""
    meters, leaves = batch_of(world, 3)
    leaves[1] = world.leaf(meters[1], world.period, 99_999, 0, signer=b"\x42" * 32)
    tree = SumTree.from_leaves(leaves)
    world.submit(tree, world.period)
    submitted = world.batch(world.period).submittedAt
    chain.pending_timestamp = submitted + CHALLENGE_WINDOW - 5
    ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    chain.pending_timestamp = submitted + CHALLENGE_WINDOW + 100
    receipts = reveal(ledger, world.period, leaves, world.operators[0])
    seen = [lf for r in receipts for lf in shown(ledger, chain, r)]
    tx = ledger.proveBadSignature(world.period, GROUP_A, seen[1].struct(), 1, tree.proof(1), sender=stranger)
    assert tx.events[0].reason == 1


def test_strangers_cannot_challenge(world, ledger, stranger, auditor, operators):
    _, leaves = batch_of(world, 2)
    world.submit(SumTree.from_leaves(leaves), world.period)
    with ape.reverts(ledger.AccessControlUnauthorizedAccount):
        ledger.challengeAvailability(world.period, GROUP_A, sender=stranger)
    ledger.challengeAvailability(world.period, GROUP_A, sender=operators[4])  # any registered party
    with ape.reverts(ledger.AlreadyChallenged):
        ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)


def test_challenge_refused_outside_a_pending_window(world, ledger, auditor):
    with ape.reverts(ledger.BatchNotPending):
        ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    world.submit(SumTree([], 0), world.period, count=0)  # an empty batch has nothing to withhold
    with ape.reverts(ledger.NothingToReveal):
        ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    world.pass_window()
    world.finalize(world.period)
    world.submit(SumTree.from_leaves([world.leaf(m, world.period + 1, 5, 0) for m in world.meters(1, prefix="late")]),
                 world.period + 1)
    world.pass_window()
    with ape.reverts(ledger.ChallengeWindowClosed):
        ledger.challengeAvailability(world.period + 1, GROUP_A, sender=auditor)


def test_reveal_needs_a_challenge_and_the_response_time(world, ledger, auditor, chain):
    _, leaves = batch_of(world, 2)
    world.submit(SumTree.from_leaves(leaves), world.period)
    with ape.reverts(ledger.NotChallenged):
        reveal(ledger, world.period, leaves, world.operators[0])
    with ape.reverts(ledger.NotChallenged):
        ledger.rejectUnrevealed(world.period, GROUP_A, sender=auditor)
    tx = ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    chain.pending_timestamp = tx.events[0].respondBy
    with ape.reverts(ledger.ResponseTimeOver):
        reveal(ledger, world.period, leaves, world.operators[0])


def test_colluders_revealing_another_tree_are_rejected(world, ledger, auditor, stranger, chain):
    meters, leaves = batch_of(world, 4)
    world.submit(SumTree.from_leaves(leaves), world.period)
    tx = ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    other = [world.leaf(m, world.period, 5, 0) for m in meters]  # valid leaves, not the committed ones
    with ape.reverts(ledger.RevealMismatch):
        reveal(ledger, world.period, other, world.operators[0], chunk=2)
    with ape.reverts(ledger.RevealOutOfRange):  # nor more leaves than the count
        ledger.revealLeaves(world.period, GROUP_A, 0, [leaf_struct(lf) for lf in other + other[:1]],
                            sender=world.operators[0])
    chain.pending_timestamp = tx.events[0].respondBy
    assert ledger.rejectUnrevealed(world.period, GROUP_A, sender=stranger).events[0].reason == REASON_WITHHELD


@pytest.mark.parametrize("fault", ["order", "duplicate"])
def test_colluders_cannot_reveal_out_of_order_or_twice(world, ledger, auditor, stranger, chain, fault):
    _, leaves = batch_of(world, 4)
    bad = list(leaves)
    if fault == "order":
        bad[1], bad[2] = bad[2], bad[1]
    else:
        bad[2] = bad[1]
    world.submit(SumTree.from_leaves(bad), world.period)  # the colluders committed that tree
    tx = ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    with ape.reverts(ledger.RevealOutOfOrder):
        reveal(ledger, world.period, bad, world.operators[0], chunk=2)  # across chunks
    with ape.reverts(ledger.RevealOutOfOrder):
        reveal(ledger, world.period, bad, world.operators[0], chunk=4)  # within one
    chain.pending_timestamp = tx.events[0].respondBy
    assert ledger.rejectUnrevealed(world.period, GROUP_A, sender=stranger).events[0].reason == REASON_WITHHELD


def test_garbage_from_others_does_not_spoil_an_honest_reveal(world, ledger, auditor, stranger):
    meters, leaves = batch_of(world, 5)
    world.submit(SumTree.from_leaves(leaves), world.period)
    ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    garbage = [world.leaf(m, world.period, 1, 0) for m in meters]
    reveal(ledger, world.period, garbage[:3], auditor)  # the challenger's own garbage, part way
    reveal(ledger, world.period, garbage[:2], stranger, chunk=2)  # and a stranger's
    with ape.reverts(ledger.RevealOutOfSequence):  # nobody continues another's progress
        ledger.revealLeaves(world.period, GROUP_A, 3, [leaf_struct(lf) for lf in leaves[3:]],
                            sender=world.operators[0])
    reveal(ledger, world.period, leaves, world.operators[0], chunk=2)
    assert ledger.availabilityChallenge(world.period, GROUP_A).revealed
    world.pass_window()
    world.finalize(world.period)
    assert world.batch(world.period).status == STATUS_FINAL


def test_restart_at_zero_replaces_own_progress(world, ledger, auditor):
    meters, leaves = batch_of(world, 4)
    world.submit(SumTree.from_leaves(leaves), world.period)
    ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    reveal(ledger, world.period, [world.leaf(m, world.period, 1, 0) for m in meters][:2], world.operators[0], 2)
    reveal(ledger, world.period, leaves, world.operators[0], chunk=2)
    assert ledger.availabilityChallenge(world.period, GROUP_A).revealed


def test_response_time_zero_refused(project, admin, registry):
    with ape.reverts(project.PeriodLedger.InvalidConfig):
        admin.deploy(project.PeriodLedger, registry, 900, 60, 0)
    assert admin.deploy(project.PeriodLedger, registry, 900, 60, 1).responseTime() == 1


MALFORMATIONS = ["none", "leaf_sum", "inner_sum", "order", "duplicate", "padding", "kind", "width", "count_more",
                 "count_fewer", "totals"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(n=st.integers(1, 9), fault=st.sampled_from(MALFORMATIONS), pick=st.integers(0, 2**16),
       chunk=st.integers(1, 4))
def test_any_single_malformation_is_rejected_by_reveal(chain, world, ledger, auditor, stranger, n, fault, pick,
                                                       chunk):
    """The colluders (3 of 5) commit a random tree with one malformation at a random position and
    reveal every leaf they hold, in random chunks: nothing rebuilds the committed root, and the
    batch is rejected once the response time is over. The unmalformed tree reveals and finalizes."""
    with chain.isolate():
        p = world.period
        meters = sorted((MeterSpec(f"dap{next(_labels)}-{i}", GROUP_A, active_from=p - 3) for i in range(n)),
                        key=lambda m: m.meter_id)
        for m in meters:
            world.register(m)
        leaves = [world.leaf(m, p, 10 + 3 * i, i) for i, m in enumerate(meters)]
        tree = SumTree.from_leaves(leaves)
        d, k = tree.depth, pick % n
        fault = {"inner_sum": d == 0, "order": n < 2, "duplicate": n < 2, "padding": n == 1 << d,
                 "count_fewer": n < 2}.get(fault) and "leaf_sum" or fault
        count, held = n, list(leaves)
        if fault == "leaf_sum":
            h, i, e = tree.node(0, k)
            tree.corrupt(0, k, (h, i, e + 1))
        elif fault == "inner_sum":
            level = 1 + pick % d
            index = (pick >> 4) % (1 << (d - level))
            h, i, e = tree.node(level, index)
            tree.corrupt(level, index, (h, i + 1, e))
        elif fault in ("order", "duplicate"):
            j = min(k, n - 2)
            held[j + 1] = held[j] if fault == "duplicate" else leaves[j]
            if fault == "order":
                held[j] = leaves[j + 1]
            tree = SumTree.from_leaves(held)
        elif fault == "padding":
            tree.corrupt(0, n + pick % ((1 << d) - n), (b"\x09" * 32, 0, 1))
        elif fault == "kind":  # an inner node over leaf k and its neighbour at leaf position k
            a, b = tree.node(0, k), ref.leaf_node(leaves[(k + 1) % n])
            tree.corrupt(0, k, (parent_hash(a, b), a[1] + b[1], a[2] + b[2]))
            assert len(inner_preimage(a, b)) == 192
        elif fault == "width":  # leaf k hashed with registers 2^64 wider (same delta)
            lf = leaves[k]
            words = leaf_words(lf, import_mwh=lf.reading.import_mwh + 2**64, prev_import_mwh=lf.prev_import_mwh + 2**64)
            tree.corrupt(0, k, (keccak(keccak(words)), *tree.node(0, k)[1:]))
        elif fault == "count_more":
            count = n + 1
        elif fault == "count_fewer":
            count = n - 1
        header = tree.header(p, GROUP_A, count, epoch=world.epoch)
        if fault == "totals":
            header = ref.BatchHeader(p, GROUP_A, header.root, header.total_import_mwh + 1, header.total_export_mwh,
                                     count, world.epoch)
        world.ledger.submitBatch(header_struct(header), cosign(world.domain, header, world.keys()),
                                 sender=world.operators[0])
        respond_by = ledger.challengeAvailability(p, GROUP_A, sender=auditor).events[0].respondBy
        try:
            reveal(ledger, p, held[:count], world.operators[0], chunk=chunk)
        except ape.exceptions.ContractLogicError:
            pass
        if fault == "none":
            assert ledger.availabilityChallenge(p, GROUP_A).revealed
            return
        assert not ledger.availabilityChallenge(p, GROUP_A).revealed
        chain.pending_timestamp = respond_by
        assert ledger.rejectUnrevealed(p, GROUP_A, sender=stranger).events[0].reason == REASON_WITHHELD


def test_the_audit_recomputes_a_revealed_batch_from_the_chain_alone(world, ledger, registry, auditor, chain):
    """No archive export at all: the revealed batch's leaves come from its reveal transactions
    (LeavesRevealed logs name them; a garbage restart by the same revealer is dropped), and every
    check passes on them."""
    from scripts._audit import audit, read_chain
    from scripts._deployment import Deployment

    meters, leaves = batch_of(world, 5)
    world.submit(SumTree.from_leaves(leaves), world.period)
    ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    reveal(ledger, world.period, [world.leaf(m, world.period, 1, 0) for m in meters][:2], world.operators[0], 2)
    reveal(ledger, world.period, leaves, world.operators[0], chunk=2)
    world.pass_window()
    world.finalize(world.period)
    dep = Deployment(chain_id=chain.chain_id, registry=registry.address, ledger=ledger.address,
                     period_seconds=world.ledger.periodSeconds(), challenge_window_seconds=CHALLENGE_WINDOW,
                     first_block=0)
    view = read_chain(chain.provider.web3, dep)
    assert [lf.struct() for lf in view.revealed[(world.period, GROUP_A, world.batch(world.period).root)]] == [
        leaf_struct(lf) for lf in leaves]
    result = audit(view, {})
    assert result.ok, [str(f) for f in result.findings]
    assert result.leaves == 5


def test_an_honest_batch_final_after_a_rejection_without_ban_audits_clean(world, ledger, registry, auditor, stranger,
                                                                          chain):
    """Rejected unrevealed (no ban), then submitted again, revealed and final: the audit does not
    take the earlier rejection for a banned header that became final."""
    from scripts._audit import audit, read_chain
    from scripts._deployment import Deployment

    _, leaves = batch_of(world, 3)
    tree = SumTree.from_leaves(leaves)
    world.submit(tree, world.period)
    ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    chain.pending_timestamp += RESPONSE_TIME + 1
    assert ledger.rejectUnrevealed(world.period, GROUP_A, sender=stranger).events[0].reason == REASON_WITHHELD
    world.submit(tree, world.period)  # the same header again
    ledger.challengeAvailability(world.period, GROUP_A, sender=auditor)
    reveal(ledger, world.period, leaves, world.operators[0])
    world.pass_window()
    world.finalize(world.period)
    dep = Deployment(chain_id=chain.chain_id, registry=registry.address, ledger=ledger.address,
                     period_seconds=world.ledger.periodSeconds(), challenge_window_seconds=CHALLENGE_WINDOW,
                     first_block=0)
    result = audit(read_chain(chain.provider.web3, dep), {})
    assert [f.kind for f in result.findings if f.period == world.period] == []


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(n=st.integers(1, 8), fault=st.sampled_from(["field", "swap", "duplicate", "drop", "extra", "signature"]),
       pick=st.integers(0, 2**16), chunk=st.integers(1, 4))
def test_any_single_malformation_of_the_revealed_leaves_never_reveals(chain, world, ledger, auditor, stranger, n,
                                                                       fault, pick, chunk):
    """Against an honest committed tree, revealed leaves with one change (a field, two swapped, a
    duplicate, one left out, one too many, another signature) never mark it revealed; the honest
    leaves still do afterwards, from the same revealer."""
    with chain.isolate():
        p = world.period
        meters = sorted((MeterSpec(f"dar{next(_labels)}-{i}", GROUP_A, active_from=p - 3) for i in range(n + 1)),
                        key=lambda m: m.meter_id)
        for m in meters:
            world.register(m)
        leaves = [world.leaf(m, p, 10 + 3 * i, i) for i, m in enumerate(meters[:n])]
        world.submit(SumTree.from_leaves(leaves), p)
        ledger.challengeAvailability(p, GROUP_A, sender=auditor)
        k = pick % n
        bad = list(leaves)
        if fault == "field" or (fault in ("swap", "duplicate", "drop") and n < 2):
            bad[k] = world.leaf(meters[k], p, 11 + 3 * k, k)
        elif fault == "swap":
            j = min(k, n - 2)
            bad[j], bad[j + 1] = bad[j + 1], bad[j]
        elif fault == "duplicate":
            bad[min(k + 1, n - 1)] = bad[min(k, n - 2)]
        elif fault == "drop":
            del bad[k]
        elif fault == "extra":
            bad = sorted([*bad, world.leaf(meters[n], p, 5, 0)], key=lambda lf: lf.reading.meter_id)
        else:
            bad[k] = world.leaf(meters[k], p, 10 + 3 * k, k, signer=b"\x31" * 32)
        try:
            reveal(ledger, p, bad, stranger, chunk=chunk)
        except ape.exceptions.ContractLogicError:
            pass
        assert not ledger.availabilityChallenge(p, GROUP_A).revealed
        reveal(ledger, p, leaves, stranger, chunk=chunk)
        assert ledger.availabilityChallenge(p, GROUP_A).revealed
