// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Meter} from "../interfaces/IMeterRegistry.sol";
import {Batch, Leaf, SumNode, STATUS_FINAL} from "../lib/SettlementTypes.sol";
import {MerkleSum} from "../lib/MerkleSum.sol";
import {BatchBook} from "./BatchBook.sol";

/// @title FraudProofs
/// @notice Fraud proofs against a pending batch, open to anyone during its challenge window.
/// Each verifies its evidence with Merkle-sum proofs against the committed root (whose root node
/// is the header's root and totals) and, if it shows a fraud, rejects the batch. A fraud in the
/// data itself (signature, order, sums, padding, node kinds, widths) bans the header under every
/// epoch (`headerRejected`); one judged against the context it was submitted in (the meter's
/// registration, the previous register on the group's chain) does not: the same content may be
/// honest on another chain (colluders submitting an honest header on their own false parent and
/// proving it "bad previous" there must not ban it), so it is only cut and may come again.
abstract contract FraudProofs is BatchBook {
    uint8 public constant REASON_BAD_SIGNATURE = 1;
    uint8 public constant REASON_UNKNOWN_METER = 2;
    uint8 public constant REASON_BAD_PREVIOUS = 3;
    uint8 public constant REASON_OUT_OF_ORDER = 4;
    uint8 public constant REASON_BAD_SUM = 5;
    uint8 public constant REASON_BAD_LEAF_SUM = 6;
    uint8 public constant REASON_BAD_PADDING = 7;
    uint8 public constant REASON_MISSING_PREVIOUS = 8;
    uint8 public constant REASON_BAD_KIND = 9;
    uint8 public constant REASON_BAD_WIDTH = 10;

    /// @dev The leaf encoding: 11 words (meterId, period, timestamp, importMwh, exportMwh,
    /// prevPeriod, prevImportMwh, prevExportMwh, r, s, v).
    uint256 private constant LEAF_ENCODING_LENGTH = 352;
    /// @dev Bit w set: word w of the leaf encoding is a uint64 (words 1 to 7).
    uint256 private constant LEAF_UINT64_WORDS = 0xfe;
    /// @dev The word of v (uint8).
    uint256 private constant LEAF_V_WORD = 10;

    /// @notice The evidence is valid but shows no fraud.
    error NoFraud();
    /// @notice The evidence about the previous register is not usable (not on the chain, other
    /// meter or group, not earlier).
    error BadEvidence(string what);

    /// @notice Proves a leaf whose reading signature does not recover to the key its meter had in
    /// `period` (the registered key, or the latest rotation from `period` or before).
    function proveBadSignature(
        uint64 period,
        bytes32 groupId,
        Leaf calldata leaf,
        uint256 index,
        SumNode[] calldata proof
    ) external {
        _verifyLeaf(_challengeable(period, groupId), leaf, index, proof);
        address key = registry.keyAt(leaf.meterId, period);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(readingDigest(leaf), leaf.v, leaf.r, leaf.s);
        if (err == ECDSA.RecoverError.NoError && signer == key) revert NoFraud();
        _reject(period, groupId, REASON_BAD_SIGNATURE);
    }

    /// @notice Proves a leaf of a meter that is unregistered, inactive in `period`, registered
    /// to another group, or whose period (or timestamp's period) is not `period`. The registry
    /// is judged as of the batch's submission: a meter counts only if registered strictly before
    /// it (registeredAt < submittedAt), so neither a registration during the challenge window nor
    /// one in the submission's own block (or at its timestamp, whose order to the submission the
    /// chain's timestamps cannot tell) can make the batch valid.
    function proveUnknownMeter(
        uint64 period,
        bytes32 groupId,
        Leaf calldata leaf,
        uint256 index,
        SumNode[] calldata proof
    ) external {
        Batch memory b = _challengeable(period, groupId);
        _verifyLeaf(b, leaf, index, proof);
        Meter memory m = registry.getMeter(leaf.meterId);
        bool fraud = m.key == address(0) || m.groupId != groupId || period < m.activeFrom || period > m.activeUntil
            || leaf.period != period || leaf.timestamp / periodSeconds != period
            || registry.registeredAt(leaf.meterId) >= b.submittedAt;
        if (!fraud) revert NoFraud();
        _cut(period, groupId, REASON_UNKNOWN_METER); // judged against the registry and chain of the day: no ban
    }

    /// @notice Proves a leaf whose previous register (prevPeriod, prevImportMwh, prevExportMwh)
    /// is not the same meter's leaf in the latest earlier batch of the group's chain, final or
    /// pending (or, before any, the registry baseline with prevPeriod = activeFrom - 1).
    /// @dev Shown without evidence: prevPeriod not earlier than `period` or before the baseline,
    /// a baseline claim that differs from the registry, or a claimed previous batch not on the
    /// chain. Otherwise (prevPeriod, prevGroupId, prevLeaf, prevIndex, prevProof) must be the
    /// same meter's leaf in an earlier batch of the same group's chain (a meter belongs to one
    /// group) that is either at leaf.prevPeriod with other registers, or later than
    /// leaf.prevPeriod (the leaf skipped it).
    function proveBadPrevious(
        uint64 period,
        bytes32 groupId,
        Leaf calldata leaf,
        uint256 index,
        SumNode[] calldata proof,
        uint64 prevPeriod,
        bytes32 prevGroupId,
        Leaf calldata prevLeaf,
        uint256 prevIndex,
        SumNode[] calldata prevProof
    ) external {
        _verifyLeaf(_challengeable(period, groupId), leaf, index, proof);
        if (!_previousSelfEvidentlyWrong(period, groupId, leaf)) {
            // a meter belongs to one group: another group's batch (final or not) is no evidence
            if (prevGroupId != groupId) revert BadEvidence("other group");
            if (!_onChain(prevPeriod, groupId)) revert BadEvidence("previous batch not on the chain");
            if (prevPeriod >= period) revert BadEvidence("previous batch not earlier");
            Batch memory pb = _batches[prevPeriod][prevGroupId];
            if (prevLeaf.meterId != leaf.meterId) revert BadEvidence("other meter");
            _verifyLeaf(pb, prevLeaf, prevIndex, prevProof);
            bool fraud = prevPeriod > leaf.prevPeriod
                || (prevPeriod == leaf.prevPeriod
                    && (prevLeaf.importMwh != leaf.prevImportMwh || prevLeaf.exportMwh != leaf.prevExportMwh));
            if (!fraud) revert NoFraud();
        }
        _cut(period, groupId, REASON_BAD_PREVIOUS); // judged against the registry and chain of the day: no ban
    }

    /// @notice Proves two adjacent leaves (b at index + 1) not in strictly ascending meter id
    /// order (this includes the same meter twice).
    function proveOutOfOrder(
        uint64 period,
        bytes32 groupId,
        Leaf calldata a,
        uint256 index,
        SumNode[] calldata proofA,
        Leaf calldata b,
        SumNode[] calldata proofB
    ) external {
        Batch memory batch = _challengeable(period, groupId);
        _verifyLeaf(batch, a, index, proofA);
        _verifyLeaf(batch, b, index + 1, proofB);
        if (a.meterId < b.meterId) revert NoFraud();
        _reject(period, groupId, REASON_OUT_OF_ORDER);
    }

    /// @notice Proves an inner node whose sums are not its children's sums. `level` counts from
    /// the leaves (1 .. depth); at level = depth the node is the root, whose sums are the
    /// header totals (so this also proves header totals that are not the root children's sum).
    /// @param node the node as committed (hash = parentHash(left, right), its claimed sums)
    /// @param index its position within its level
    /// @param proof sibling nodes from its level up to the root
    function proveBadSum(
        uint64 period,
        bytes32 groupId,
        uint256 level,
        uint256 index,
        SumNode calldata node,
        SumNode calldata left,
        SumNode calldata right,
        SumNode[] calldata proof
    ) external {
        Batch memory b = _challengeable(period, groupId);
        if (level == 0) revert BadEvidence("level 0 is a leaf");
        if (node.hash != MerkleSum.parentHash(left, right)) revert BadProof();
        _verifyNode(b, node, level, index, proof); // node's own sums fit uint64 once verified
        uint256 u64 = type(uint64).max;
        if (left.importMwh > u64 || left.exportMwh > u64 || right.importMwh > u64 || right.exportMwh > u64) {
            _reject(period, groupId, REASON_BAD_WIDTH); // a child's sum hashed wider than uint64
            return;
        }
        if (left.importMwh + right.importMwh == node.importMwh && left.exportMwh + right.exportMwh == node.exportMwh)
        {
            revert NoFraud();
        }
        _reject(period, groupId, REASON_BAD_SUM);
    }

    /// @notice Proves a node whose kind contradicts its level: every leaf-level node is
    /// keccak256 of one 32-byte word (leafHash; padding is 0x00..00, which has no preimage) and
    /// every node above is keccak256 of its two children (six words, 192 bytes). So a leaf hash at
    /// level >= 1 or an inner node at level 0 (a meter counted twice under one position) is shown
    /// by its preimage alone.
    /// @param node the node as committed at (`level`, `index`)
    /// @param preimage bytes whose keccak256 is node.hash: 32 bytes at level >= 1, anything but
    /// 32 bytes at level 0
    function proveBadNodeKind(
        uint64 period,
        bytes32 groupId,
        uint256 level,
        uint256 index,
        SumNode calldata node,
        bytes calldata preimage,
        SumNode[] calldata proof
    ) external {
        Batch memory b = _challengeable(period, groupId);
        if (keccak256(preimage) != node.hash) revert BadProof();
        _verifyNode(b, node, level, index, proof);
        if (level == 0 ? preimage.length == 32 : preimage.length == 192) revert NoFraud();
        _reject(period, groupId, REASON_BAD_KIND);
    }

    /// @notice Proves a leaf-level node whose leaf encoding is malformed: not the 11 words of a
    /// Leaf, or a word wider than its field's type (uint64 for period .. prevExportMwh, uint8
    /// for v). Such a leaf cannot be passed as a Leaf to any other proof.
    /// @param node the leaf node as committed (hash = keccak256(keccak256(encoding)))
    /// @param encoding the leaf's hashed encoding, word by word as committed
    function proveMalformedLeaf(
        uint64 period,
        bytes32 groupId,
        uint256 index,
        SumNode calldata node,
        bytes calldata encoding,
        SumNode[] calldata proof
    ) external {
        Batch memory b = _challengeable(period, groupId);
        if (keccak256(bytes.concat(keccak256(encoding))) != node.hash) revert BadProof();
        _verifyNode(b, node, 0, index, proof);
        if (_wellFormedLeaf(encoding)) revert NoFraud();
        _reject(period, groupId, REASON_BAD_WIDTH);
    }

    /// @notice Proves a leaf node whose sums are not its leaf's deltas (importMwh -
    /// prevImportMwh, exportMwh - prevExportMwh), including a register that ran backwards.
    /// @param node the leaf node as committed (hash = leafHash(leaf), its claimed sums)
    function proveBadLeafSum(
        uint64 period,
        bytes32 groupId,
        Leaf calldata leaf,
        uint256 index,
        SumNode calldata node,
        SumNode[] calldata proof
    ) external {
        Batch memory b = _challengeable(period, groupId);
        if (index >= b.count) revert IndexOutOfRange(index, b.count);
        if (node.hash != MerkleSum.leafHash(leaf)) revert BadProof();
        _verifyNode(b, node, 0, index, proof);
        bool fraud = leaf.importMwh < leaf.prevImportMwh || leaf.exportMwh < leaf.prevExportMwh
            || node.importMwh != leaf.importMwh - leaf.prevImportMwh
            || node.exportMwh != leaf.exportMwh - leaf.prevExportMwh;
        if (!fraud) revert NoFraud();
        _reject(period, groupId, REASON_BAD_LEAF_SUM);
    }

    /// @notice Proves a leaf-level position that contradicts the count: a non-empty node at
    /// index >= count (padding must be (0x00..00, 0, 0)), or an empty one at index < count.
    function proveBadPadding(
        uint64 period,
        bytes32 groupId,
        uint256 index,
        SumNode calldata node,
        SumNode[] calldata proof
    ) external {
        Batch memory b = _challengeable(period, groupId);
        _verifyNode(b, node, 0, index, proof);
        bool fraud = index >= b.count
            ? (node.hash != bytes32(0) || node.importMwh != 0 || node.exportMwh != 0)
            : node.hash == bytes32(0);
        if (!fraud) revert NoFraud();
        _reject(period, groupId, REASON_BAD_PADDING);
    }

    /// @notice Proves a leaf that counts from a batch (leaf.prevPeriod, groupId) of its chain in
    /// which its meter has no leaf (unless prevPeriod is the meter's baseline period
    /// activeFrom - 1: the first leaf counts from the registry there, whatever that batch holds),
    /// shown by that batch's leaves around where the meter id would be: two
    /// adjacent ones (at neighbourIndex, neighbourIndex + 1) with ids below and above it, or one:
    /// the first leaf (neighbourIndex 0) with a higher id, or the last with a lower id.
    /// @param neighbourProofs the neighbours' sibling nodes: for one neighbour its proof (depth(count)
    /// long); for two, which first meet at level m (m - 1 = the trailing one bits of neighbourIndex),
    /// the first's siblings below level m - 1, then the second's, then their shared siblings from
    /// level m up (depth(count) + m - 2 in all): each is the other's sibling at level m - 1
    function proveMissingPrevious(
        uint64 period,
        bytes32 groupId,
        Leaf calldata leaf,
        uint256 index,
        SumNode[] calldata proof,
        uint256 neighbourIndex,
        Leaf[] calldata neighbours,
        SumNode[] calldata neighbourProofs
    ) external {
        _verifyLeaf(_challengeable(period, groupId), leaf, index, proof);
        if (leaf.prevPeriod == _baselinePeriod(leaf.meterId)) {
            // counts from the registry baseline, not from a batch (a meter new since that batch)
            revert BadEvidence("baseline: use proveBadPrevious");
        }
        if (leaf.prevPeriod >= period || !_onChain(leaf.prevPeriod, groupId)) {
            revert BadEvidence("not earlier on the chain: use proveBadPrevious");
        }
        Batch memory pb = _batches[leaf.prevPeriod][groupId];
        if (!_absent(pb, leaf.meterId, neighbourIndex, neighbours, neighbourProofs)) revert NoFraud();
        _cut(period, groupId, REASON_MISSING_PREVIOUS); // judged against the registry and chain of the day: no ban
    }

    /// @dev Whether verified neighbours in `pb` show that `id` is not in it.
    function _absent(
        Batch memory pb,
        bytes32 id,
        uint256 neighbourIndex,
        Leaf[] calldata neighbours,
        SumNode[] calldata neighbourProofs
    ) private pure returns (bool) {
        if (pb.count == 0) return true; // an empty batch holds no meter
        uint256 n = neighbours.length;
        uint256 d = MerkleSum.depth(pb.count);
        if (n == 1) {
            if (neighbourProofs.length != d) revert BadEvidence("one or two neighbours");
            _verifyLeaf(pb, neighbours[0], neighbourIndex, neighbourProofs);
            if (neighbourIndex == 0 && id < neighbours[0].meterId) return true;
            return neighbourIndex == pb.count - 1 && id > neighbours[0].meterId;
        }
        if (n != 2) revert BadEvidence("one or two neighbours");
        if (neighbourIndex + 1 >= pb.count) revert IndexOutOfRange(neighbourIndex + 1, pb.count);
        // neighbourIndex + 1 < count <= 2^d: the pair meets at a level m <= d
        uint256 m = 1;
        while ((neighbourIndex >> (m - 1)) & 1 == 1) ++m;
        if (neighbourProofs.length != d + m - 2) revert BadEvidence("one or two neighbours");
        (bytes32 h, uint256 imp, uint256 exp) = _pairUp(neighbourIndex, m, neighbours, neighbourProofs);
        if (h != pb.root || imp != pb.totalImportMwh || exp != pb.totalExportMwh) revert BadProof();
        return neighbours[0].meterId < id && id < neighbours[1].meterId;
    }

    /// @dev The root node from the leaves at i and i + 1, which meet at level m: each walks its own
    /// m - 1 siblings up, then their parent walks the shared siblings.
    function _pairUp(uint256 i, uint256 m, Leaf[] calldata pair, SumNode[] calldata siblings)
        private
        pure
        returns (bytes32 h, uint256 imp, uint256 exp)
    {
        uint256 low = m - 1;
        (h, imp, exp) = _leafUp(pair[0], i, siblings[:low]);
        (h, imp, exp) = _joinRight(h, imp, exp, pair[1], i + 1, siblings[low:2 * low]);
        return _walk(h, imp, exp, i >> m, siblings[2 * low:]);
    }

    /// @dev The parent of the left node (h, imp, exp) and of the right leaf walked up its siblings.
    function _joinRight(
        bytes32 h,
        uint256 imp,
        uint256 exp,
        Leaf calldata right,
        uint256 index,
        SumNode[] calldata siblings
    ) private pure returns (bytes32, uint256, uint256) {
        (bytes32 rh, uint256 ri, uint256 re) = _leafUp(right, index, siblings);
        h = MerkleSum.hashPair(h, imp, exp, rh, ri, re);
        imp += ri;
        exp += re;
        if (imp > type(uint64).max || exp > type(uint64).max) revert MerkleSum.SumOverflow();
        return (h, imp, exp);
    }

    /// @dev A leaf's node (its deltas as sums) walked up `siblings` from position `index`.
    function _leafUp(Leaf calldata leaf, uint256 index, SumNode[] calldata siblings)
        private
        pure
        returns (bytes32, uint256, uint256)
    {
        if (leaf.importMwh < leaf.prevImportMwh || leaf.exportMwh < leaf.prevExportMwh) {
            revert RegisterRegression(leaf.meterId);
        }
        return _walk(
            MerkleSum.leafHash(leaf), leaf.importMwh - leaf.prevImportMwh, leaf.exportMwh - leaf.prevExportMwh, index,
            siblings
        );
    }

    /// @dev MerkleSum.computeRoot on the stack: the node (h, imp, ex) at `index` walked up
    /// `siblings` (bit k of index set: sibling k on the left), hashed in scratch memory.
    function _walk(bytes32 h, uint256 imp, uint256 ex, uint256 index, SumNode[] calldata siblings)
        private
        pure
        returns (bytes32, uint256, uint256)
    {
        assembly ("memory-safe") {
            let p := mload(0x40)
            for {
                let q := siblings.offset
                let end := add(q, mul(siblings.length, 0x60))
            } lt(q, end) { q := add(q, 0x60) } {
                let si := calldataload(add(q, 0x20))
                let se := calldataload(add(q, 0x40))
                if or(shr(64, si), shr(64, se)) {
                    mstore(0, shl(224, 0x2aac5269)) // MerkleSum.SumOverflow(): a sibling wider than uint64
                    revert(0, 4)
                }
                let s := mul(iszero(and(index, 1)), 0x60) // the sibling's offset: 0 if on the left
                mstore(add(p, s), calldataload(q))
                mstore(add(p, add(s, 0x20)), si)
                mstore(add(p, add(s, 0x40)), se)
                s := sub(0x60, s) // the node's offset
                mstore(add(p, s), h)
                mstore(add(p, add(s, 0x20)), imp)
                mstore(add(p, add(s, 0x40)), ex)
                h := keccak256(p, 0xc0)
                imp := add(imp, si)
                ex := add(ex, se)
                if or(shr(64, imp), shr(64, ex)) {
                    mstore(0, shl(224, 0x2aac5269)) // MerkleSum.SumOverflow()
                    revert(0, 4)
                }
                index := shr(1, index)
            }
        }
        return (h, imp, ex);
    }

    /// @dev Whether `encoding` is 11 words, each within its Leaf field's type.
    function _wellFormedLeaf(bytes calldata encoding) private pure returns (bool) {
        if (encoding.length != LEAF_ENCODING_LENGTH) return false;
        for (uint256 w = 1; w <= LEAF_V_WORD; ++w) {
            uint256 word = uint256(bytes32(encoding[w * 32:(w + 1) * 32]));
            uint256 bits = (LEAF_UINT64_WORDS >> w) & 1 == 1 ? 64 : w == LEAF_V_WORD ? 8 : 256;
            if (bits < 256 && word >> bits != 0) return false;
        }
        return true;
    }

    /// @dev The registered meter (activeFrom >= 1), or BadEvidence.
    function _registered(bytes32 meterId) private view returns (Meter memory m) {
        m = registry.getMeter(meterId);
        if (m.key == address(0)) revert BadEvidence("unregistered: use proveUnknownMeter");
    }

    /// @dev The period a meter's first leaf counts from (its registry baseline): activeFrom - 1.
    function _baselinePeriod(bytes32 meterId) private view returns (uint64) {
        return _registered(meterId).activeFrom - 1;
    }

    function _previousSelfEvidentlyWrong(uint64 period, bytes32 groupId, Leaf calldata leaf)
        private
        view
        returns (bool)
    {
        Meter memory m = _registered(leaf.meterId);
        uint64 baseline = m.activeFrom - 1;
        if (leaf.prevPeriod >= period || leaf.prevPeriod < baseline) return true;
        if (leaf.prevPeriod == baseline) {
            return leaf.prevImportMwh != m.baselineImportMwh || leaf.prevExportMwh != m.baselineExportMwh;
        }
        return !_onChain(leaf.prevPeriod, groupId);
    }
}
