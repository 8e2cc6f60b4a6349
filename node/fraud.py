"""Checks a peer's committed batch leaf by leaf and names the fraud proof that rejects it:
leaves out of order, a meter unknown / inactive / of another group / of another period, a bad
meter signature, or a previous register that is not the meter's latest final one."""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import rust_core

from node.archive import Archive
from node.chain import ChainBatch
from node.registry import RegistryView

EMPTY_LEAF = (b"\x00" * 32, 0, 0, 0, 0, 0, 0, 0, b"\x00" * 32, b"\x00" * 32, 0)


@dataclass(frozen=True)
class FraudProof:
    function: str   # PeriodLedger prove* function
    args: tuple
    what: str       # for the log


def sum_tree(leaves: list[tuple]) -> rust_core.MerkleSumTree:
    """The tree of a batch as committed: built without the order check, so that a peer's
    out-of-order batch can still be rebuilt and proven."""
    return rust_core.MerkleSumTree(leaves, check_order=False)


def pair_proof(tree, index: int) -> list[tuple]:
    """Siblings of the adjacent leaves index and index + 1 as proveMissingPrevious takes them:
    below the level m where they meet, the first's then the second's; then the shared ones."""
    m = 1
    while (index >> (m - 1)) & 1:
        m += 1
    a, b = tree.proof(index), tree.proof(index + 1)
    return a[:m - 1] + b[:m - 1] + a[m:]


def leaf_struct(leaf: tuple) -> tuple:
    """A leaf tuple as the contracts' Leaf struct (the signature split into r, s, v)."""
    sig = leaf[8]
    return (*leaf[:8], sig[:32], sig[32:64], sig[64])


def find_fraud(leaves: list[tuple], committed: ChainBatch, period: int, group_id: bytes, registry: RegistryView,
               archive: Archive, domain: bytes, period_seconds: int) -> FraudProof | str:
    """The first provable fraud in the batch, or a string saying why none was found."""
    try:
        tree = sum_tree(leaves)
    except rust_core.CoreError as e:
        return f"leaves cannot be rebuilt: {e}"
    if len(leaves) != committed.count or tree.root != (committed.root, committed.total_import, committed.total_export):
        return "leaves do not rebuild the committed root"

    def at(i: int) -> tuple:
        return (leaf_struct(leaves[i]), i, tree.proof(i))

    for i in range(1, len(leaves)):
        if leaves[i - 1][0] >= leaves[i][0]:
            a, ia, pa = at(i - 1)
            b, _, pb = at(i)
            return FraudProof("proveOutOfOrder", (period, group_id, a, ia, pa, b, pb), f"leaves {i - 1},{i} out of order")
    meters = registry.lookup([leaf[0] for leaf in leaves])
    for i, leaf in enumerate(leaves):
        m = meters.get(leaf[0])
        if (m is None or m.group_id != group_id or not m.active_from <= period <= m.active_until
                or leaf[1] != period or leaf[2] // period_seconds != period):
            return FraudProof("proveUnknownMeter", (period, group_id, *at(i)), f"leaf {i}: meter unknown here")
    failures = rust_core.verify_readings(
        domain, [leaf[:5] for leaf in leaves], [leaf[8] for leaf in leaves], [meters[leaf[0]].key for leaf in leaves]
    )
    if failures:
        i = failures[0][0]
        return FraudProof("proveBadSignature", (period, group_id, *at(i)), f"leaf {i}: {failures[0][1]}")
    states = archive.meter_states([leaf[0] for leaf in leaves])
    for i, leaf in enumerate(leaves):
        m = meters[leaf[0]]
        baseline = (m.active_from - 1, m.baseline_import, m.baseline_export)
        expected = states.get(leaf[0], baseline)
        if tuple(leaf[5:8]) == expected:
            continue
        claimed = leaf[5]
        # What the ledger sees without evidence (FraudProofs._previousSelfEvidentlyWrong).
        if claimed == baseline[0]:
            self_evident = tuple(leaf[5:8]) != baseline
        else:
            self_evident = (claimed >= period or claimed < baseline[0]
                            or archive.final_batch(claimed, group_id) is None)
        if self_evident:
            evidence = (0, b"\x00" * 32, EMPTY_LEAF, 0, [])
        elif expected[0] < claimed:
            # The claimed final batch is later than the meter's latest final leaf we know, so it
            # does not hold the meter: show its neighbours there.
            return _missing_previous(archive, period, group_id, leaf, at(i), claimed)
        else:
            prev = archive.final_batch(expected[0], group_id)
            prev_leaves = archive.leaves(prev.period, group_id, prev.root)
            j = next(k for k, pl in enumerate(prev_leaves) if pl[0] == leaf[0])
            evidence = (prev.period, group_id, leaf_struct(prev_leaves[j]), j, sum_tree(prev_leaves).proof(j))
        return FraudProof("proveBadPrevious", (period, group_id, *at(i), *evidence), f"leaf {i}: previous register")
    return "no provable fraud in the leaves"


def _missing_previous(archive: Archive, period: int, group_id: bytes, leaf: tuple, located: tuple,
                      claimed: int) -> FraudProof | str:
    prev = archive.final_batch(claimed, group_id)
    prev_leaves = archive.leaves(prev.period, group_id, prev.root)
    ids = [pl[0] for pl in prev_leaves]
    if leaf[0] in ids:
        return "our registers lag a final batch that holds the meter"
    pos = bisect.bisect_left(ids, leaf[0])
    if pos == 0:
        picked = [0]                       # every id there is above the meter's
    elif pos == len(ids):
        picked = [len(ids) - 1]            # every id there is below it
    else:
        picked = [pos - 1, pos]            # the meter would sit between these two
    first = picked[0]
    tree = sum_tree(prev_leaves)
    neighbours = [leaf_struct(prev_leaves[k]) for k in picked]
    proofs = tree.proof(first) if len(picked) == 1 else pair_proof(tree, first)  # shared upper siblings once
    return FraudProof("proveMissingPrevious", (period, group_id, *located, first, neighbours, proofs),
                      f"meter missing from final period {claimed}")
