"""Checks a peer's committed batch leaf by leaf and names the fraud proof that rejects it:
leaves out of order, a meter unknown / inactive / of another group / of another period, a bad
meter signature, or a previous register that is not the meter's latest final one."""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import rust_core
from rust_core.wire import Leaf, Register, SumNode, nodes

from node.archive import Archive
from node.chain import ChainBatch
from node.registry import RegistryView

EMPTY_LEAF = Leaf(b"\x00" * 32, 0, 0, 0, 0, 0, 0, 0, b"\x00" * 65).struct()  # evidence when none is needed


@dataclass(frozen=True)
class FraudProof:
    function: str   # PeriodLedger prove* function
    args: tuple
    what: str       # for the log


def sum_tree(leaves: list[Leaf]) -> rust_core.MerkleSumTree:
    """The tree of a batch as committed: built without the order check, so that a peer's
    out-of-order batch can still be rebuilt and proven."""
    return rust_core.MerkleSumTree(leaves, check_order=False)


def pair_proof(tree, index: int) -> list[SumNode]:
    """Siblings of the adjacent leaves index and index + 1 as proveMissingPrevious takes them:
    below the level m where they meet, the first's then the second's; then the shared ones."""
    m = 1
    while (index >> (m - 1)) & 1:
        m += 1
    a, b = nodes(tree.proof(index)), nodes(tree.proof(index + 1))
    return a[:m - 1] + b[:m - 1] + a[m:]


def find_fraud(leaves: list[Leaf], committed: ChainBatch, period: int, group_id: bytes, registry: RegistryView,
               archive: Archive, domain: bytes, period_seconds: int) -> FraudProof | str:
    """The first provable fraud in the batch, or a string saying why none was found."""
    leaves = [Leaf._make(lf) for lf in leaves]
    try:
        tree = sum_tree(leaves)
    except rust_core.CoreError as e:
        return f"leaves cannot be rebuilt: {e}"
    if len(leaves) != committed.count or SumNode._make(tree.root) != committed.root_node:
        return "leaves do not rebuild the committed root"

    def at(i: int) -> tuple:
        return (leaves[i].struct(), i, nodes(tree.proof(i)))

    for i in range(1, len(leaves)):
        if leaves[i - 1].meter_id >= leaves[i].meter_id:
            a, ia, pa = at(i - 1)
            b, _, pb = at(i)
            return FraudProof("proveOutOfOrder", (period, group_id, a, ia, pa, b, pb), f"leaves {i - 1},{i} out of order")
    meters = registry.lookup([leaf.meter_id for leaf in leaves])
    for i, leaf in enumerate(leaves):
        m = meters.get(leaf.meter_id)
        if (m is None or m.group_id != group_id or not m.active_from <= period <= m.active_until
                or leaf.period != period or leaf.timestamp // period_seconds != period):
            return FraudProof("proveUnknownMeter", (period, group_id, *at(i)), f"leaf {i}: meter unknown here")
    failures = rust_core.verify_readings(
        domain, [leaf.reading for leaf in leaves], [leaf.signature for leaf in leaves],
        [meters[leaf.meter_id].key for leaf in leaves],
    )
    if failures:
        i, why = failures[0]
        return FraudProof("proveBadSignature", (period, group_id, *at(i)), f"leaf {i}: {why}")
    states = archive.meter_states([leaf.meter_id for leaf in leaves])
    for i, leaf in enumerate(leaves):
        baseline = meters[leaf.meter_id].baseline
        expected = states.get(leaf.meter_id, baseline)
        if leaf.prev == expected:
            continue
        claimed = leaf.prev_period
        # What the ledger sees without evidence (FraudProofs._previousSelfEvidentlyWrong).
        if claimed == baseline.period:
            self_evident = leaf.prev != baseline
        else:
            self_evident = (claimed >= period or claimed < baseline.period
                            or archive.final_batch(claimed, group_id) is None)
        if self_evident:
            evidence = (0, b"\x00" * 32, EMPTY_LEAF, 0, [])
        elif expected.period < claimed:
            # The claimed final batch is later than the meter's latest final leaf we know, so it
            # does not hold the meter: show its neighbours there.
            return _missing_previous(archive, period, group_id, leaf, at(i), claimed)
        else:
            evidence = _previous_leaf(archive, group_id, leaf.meter_id, expected)
        return FraudProof("proveBadPrevious", (period, group_id, *at(i), *evidence), f"leaf {i}: previous register")
    return "no provable fraud in the leaves"


def _previous_leaf(archive: Archive, group_id: bytes, meter: bytes, expected: Register) -> tuple:
    """(period, group, leaf, index, proof) of the meter's leaf in its latest final batch."""
    prev = archive.final_batch(expected.period, group_id)
    prev_leaves = archive.leaves(prev.period, group_id, prev.root)
    j = next(k for k, pl in enumerate(prev_leaves) if pl.meter_id == meter)
    return (prev.period, group_id, prev_leaves[j].struct(), j, nodes(sum_tree(prev_leaves).proof(j)))


def _missing_previous(archive: Archive, period: int, group_id: bytes, leaf: Leaf, located: tuple,
                      claimed: int) -> FraudProof | str:
    prev = archive.final_batch(claimed, group_id)
    prev_leaves = archive.leaves(prev.period, group_id, prev.root)
    ids = [pl.meter_id for pl in prev_leaves]
    if leaf.meter_id in ids:
        return "our registers lag a final batch that holds the meter"
    pos = bisect.bisect_left(ids, leaf.meter_id)
    if pos == 0:
        picked = [0]                       # every id there is above the meter's
    elif pos == len(ids):
        picked = [len(ids) - 1]            # every id there is below it
    else:
        picked = [pos - 1, pos]            # the meter would sit between these two
    first = picked[0]
    tree = sum_tree(prev_leaves)
    neighbours = [prev_leaves[k].struct() for k in picked]
    proofs = nodes(tree.proof(first)) if len(picked) == 1 else pair_proof(tree, first)  # shared upper siblings once
    return FraudProof("proveMissingPrevious", (period, group_id, *located, first, neighbours, proofs),
                      f"meter missing from final period {claimed}")
