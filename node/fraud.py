"""Checks a peer's committed batch and names the fraud proof that rejects it: the shape of a
whole committed tree (node kinds, widths, padding, sums: `find_tree_fraud`), then leaf by leaf
(`find_fraud`): leaves out of order, a meter unknown / inactive / of another group / of another
period / registered after the batch, a bad meter signature, or a previous register that is not
the meter's latest final one."""
from __future__ import annotations

import bisect
from dataclasses import dataclass

from eth_abi import encode
from eth_utils import keccak

import rust_core
from node.archive import Archive
from node.availability import LEAF_BYTES, decode_revealed
from node.chain import ChainBatch
from node.registry import RegistryView
from rust_core.reference import pair_proof as _pair_proof
from rust_core.wire import EMPTY_NODE, Leaf, Register, SumNode, nodes

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
    """Siblings of the adjacent leaves index and index + 1 as proveMissingPrevious takes them."""
    return nodes(_pair_proof(tree, index))


U64 = 2**64


@dataclass(frozen=True)
class CommittedTree:
    """A batch's tree node by node as committed (levels[0] the leaf level padded to 2**depth,
    levels[-1] == [root]), with the preimages its holder knows: `encodings[i]` the hashed
    encoding of leaf-level node i (keccak256(keccak256(encoding)) = its hash), `preimages[(level,
    index)]` any other bytes whose keccak256 is that node's hash."""

    levels: list[list[SumNode]]
    encodings: dict[int, bytes]
    preimages: dict[tuple[int, int], bytes]

    def proof(self, index: int, level: int = 0) -> list[SumNode]:
        out = []
        for lvl in self.levels[level:-1]:
            out.append(lvl[index ^ 1])
            index >>= 1
        return out


def _inner_hash(left: SumNode, right: SumNode) -> bytes:
    """What an inner node hashes: its children as committed, six full words."""
    return keccak(encode(["bytes32", "uint256", "uint256", "bytes32", "uint256", "uint256"], [*left, *right]))


def _well_formed(encoding: bytes) -> bool:
    """FraudProofs._wellFormedLeaf: 11 words, period .. prevExportMwh uint64, v uint8."""
    if len(encoding) != LEAF_BYTES:
        return False
    words = [int.from_bytes(encoding[w * 32:(w + 1) * 32], "big") for w in range(11)]
    return all(w < U64 for w in words[1:8]) and words[10] < 256


def find_tree_fraud(tree: CommittedTree, committed: ChainBatch, period: int, group_id: bytes, registry: RegistryView,
                    archive: Archive, domain: bytes, period_seconds: int) -> FraudProof | str:
    """The first provable fraud in a whole committed tree: walked from the root down, every inner
    node must hash its two children with sums of uint64 width adding up (proveBadSum, reason 5 or
    10), or be shown as a leaf hash above the leaves (proveBadNodeKind); every leaf-level node
    must be padding exactly from `count` on (proveBadPadding), and below it a well-formed leaf
    (proveMalformedLeaf, or proveBadNodeKind for an inner node there) whose deltas are its sums
    (proveBadLeafSum). A tree of sound shape goes on to the leaf checks of `find_fraud`."""
    levels, count = tree.levels, committed.count
    depth = (count - 1).bit_length() if count else 0
    if len(levels) != depth + 1 or SumNode._make(levels[-1][0]) != committed.root_node:
        return "the tree does not reach the committed root at depth(count)"
    args = (period, group_id)
    frontier = [0]
    for level in range(depth, 0, -1):
        below = []
        for i in frontier:
            node = SumNode._make(levels[level][i])
            left, right = SumNode._make(levels[level - 1][2 * i]), SumNode._make(levels[level - 1][2 * i + 1])
            at = (level, i, node)
            if _inner_hash(left, right) != node.hash:
                pre = tree.preimages.get((level, i))
                if pre is not None and len(pre) == 32 and keccak(pre) == node.hash:
                    return FraudProof("proveBadNodeKind", (*args, *at, pre, tree.proof(i, level)),
                                      f"a leaf hash at level {level}, index {i}")
                continue  # a node of unknown preimage: nothing below it can be proven
            if max(left.import_mwh, left.export_mwh, right.import_mwh, right.export_mwh) >= U64 or (
                    left.import_mwh + right.import_mwh, left.export_mwh + right.export_mwh) != (
                    node.import_mwh, node.export_mwh):
                return FraudProof("proveBadSum", (*args, *at, left, right, tree.proof(i, level)),
                                  f"sums at level {level}, index {i}")
            below += [2 * i, 2 * i + 1]
        frontier = below
    leaves: dict[int, Leaf] = {}
    for i in frontier:
        node = SumNode._make(levels[0][i])
        located = (i, node, tree.proof(i))
        if (node != EMPTY_NODE) if i >= count else (node.hash == EMPTY_NODE.hash):
            return FraudProof("proveBadPadding", (*args, *located), f"padding at leaf position {i}")
        if i >= count:
            continue
        pre, enc = tree.preimages.get((0, i)), tree.encodings.get(i)
        if pre is not None and len(pre) != 32 and keccak(pre) == node.hash:
            return FraudProof("proveBadNodeKind", (*args, 0, i, node, pre, tree.proof(i)), f"an inner node at leaf position {i}")
        if enc is None or keccak(keccak(enc)) != node.hash:
            continue
        if not _well_formed(enc):
            return FraudProof("proveMalformedLeaf", (*args, i, node, enc, tree.proof(i)), f"leaf {i} malformed")
        leaf = decode_revealed(enc)[0]
        deltas = (leaf.import_mwh - leaf.prev_import_mwh, leaf.export_mwh - leaf.prev_export_mwh)
        if deltas != (node.import_mwh, node.export_mwh):
            return FraudProof("proveBadLeafSum", (*args, leaf.struct(), *located), f"leaf {i}: sums not its deltas")
        leaves[i] = leaf
    if len(leaves) < count:
        return f"{count - len(leaves)} leaves of the committed tree are not known"
    return find_fraud([leaves[i] for i in range(count)], committed, period, group_id, registry, archive, domain,
                      period_seconds)


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
                or leaf.period != period or leaf.timestamp // period_seconds != period
                or registry.registered_at(leaf.meter_id) >= committed.submitted_at):  # strictly before it
            return FraudProof("proveUnknownMeter", (period, group_id, *at(i)), f"leaf {i}: meter unknown here")
    failures = rust_core.verify_readings(
        domain, [leaf.reading for leaf in leaves], [leaf.signature for leaf in leaves],
        [meters[leaf.meter_id].key_at(period) for leaf in leaves],
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
