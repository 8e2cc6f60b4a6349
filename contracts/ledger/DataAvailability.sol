// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {
    AccessControlUnauthorizedAccount,
    AUDITOR,
    METER_OPERATOR
} from "../interfaces/IMeterRegistry.sol";
import {Batch, Challenge, Leaf, STATUS_PENDING} from "../lib/SettlementTypes.sol";
import {MerkleSum} from "../lib/MerkleSum.sol";
import {BatchBook} from "./BatchBook.sol";

/// @title DataAvailability
/// @notice Data availability challenges (issue 11 item 4, the shape of optimistic rollups'):
/// a registered party (settlement operator, meter operator, auditor) challenges a pending batch
/// within its fraud window; its leaves must then be revealed on chain within `responseTime`, in
/// chunks, and the contract rebuilds the Merkle-sum tree from them itself (leaf hashes, deltas,
/// strict meter order, field widths, padding, count, root and totals). A batch not revealed in
/// time is rejected by anyone (`rejectUnrevealed`, reason 12); one that is fully revealed can no
/// longer be rejected that way, and its fraud window lasts at least `responseTime` past the
/// reveal, so the revealed data can still be disproven by the fraud proofs.
/// @dev Anyone may reveal, each revealer on its own progress: the contract checks every leaf
/// against the committed root, so a reveal needs no trust, and garbage posted by one party (a
/// challenger, a colluding co-signer) can neither spoil nor block an honest revealer's progress.
/// A revealed set of leaves that does not rebuild the root reverts: the batch then stays
/// unrevealed and the timeout rejects it, unless someone reveals the committed tree in time.
abstract contract DataAvailability is BatchBook {
    /// @notice BatchRejected reason of a challenged batch whose leaves were not revealed in time.
    uint8 public constant REASON_WITHHELD = 12;

    /// @dev Levels of the reveal stack: count is a uint32, so depth <= 32.
    uint256 private constant STACK_LEVELS = 33;
    /// @dev Bytes of one Leaf in calldata (11 words, a static struct).
    uint256 private constant LEAF_BYTES = 352;

    /// @dev One revealer's progress over one batch: the leaves revealed so far ([0, next)), the
    /// last meter id (strict order across chunks), and the complete subtrees so far: one per
    /// set bit of `next`, at that bit's level (hash, and sums packed import << 128 | export).
    struct RevealProgress {
        uint32 next;
        bytes32 lastMeterId;
        bytes32[STACK_LEVELS] hashes;
        uint256[STACK_LEVELS] sums;
    }

    mapping(bytes32 batchKey => mapping(address revealer => RevealProgress)) private _reveals;

    event AvailabilityChallenged(uint64 indexed period, bytes32 indexed groupId, address challenger, uint256 respondBy);
    /// @notice Leaves [firstIndex, firstIndex + n) of a batch as posted by `revealer`: `leaves` is
    /// their calldata as is, n consecutive 352-byte Leaf encodings (abi.encode of each Leaf), so
    /// the event costs a copy, not a re-encoding. The audit reads the chunks of the revealer
    /// named in BatchRevealed; a chunk at index 0 restarts that revealer's progress.
    event LeavesRevealed(
        uint64 indexed period, bytes32 indexed groupId, address indexed revealer, uint256 firstIndex, bytes leaves
    );
    /// @notice The revealer's leaves rebuilt the committed root: the batch can no longer be
    /// rejected as withheld; fraud proofs are accepted until `closesAt`.
    event BatchRevealed(uint64 indexed period, bytes32 indexed groupId, address revealer, uint256 closesAt);

    error AlreadyChallenged(uint64 period, bytes32 groupId);
    error NotChallenged(uint64 period, bytes32 groupId);
    error AlreadyRevealed(uint64 period, bytes32 groupId);
    /// @notice An empty batch (count 0) has no leaves to withhold.
    error NothingToReveal(uint64 period, bytes32 groupId);
    error ResponseTimeOver(uint64 period, bytes32 groupId, uint256 respondBy);
    error ResponseTimeOpen(uint64 period, bytes32 groupId, uint256 respondBy);
    /// @notice A chunk must continue the revealer's progress (or restart at 0).
    error RevealOutOfSequence(uint256 firstIndex, uint256 expected);
    /// @notice An empty chunk, or one reaching past the batch's count.
    error RevealOutOfRange(uint256 end, uint256 count);
    /// @notice The leaf at `index` does not have a strictly higher meter id than the one before.
    error RevealOutOfOrder(uint256 index);
    /// @notice The leaf at `index` has a word wider than its field, or a register that ran backwards.
    error RevealMalformedLeaf(uint256 index);
    /// @notice The revealed leaves do not rebuild the committed root and totals.
    error RevealMismatch(bytes32 root, uint256 totalImportMwh, uint256 totalExportMwh);

    /// @notice Challenges a pending batch's data availability: its leaves must be revealed
    /// (`revealLeaves`) within `responseTime`, or anyone may reject it (`rejectUnrevealed`).
    /// Only during the batch's fraud window, once per batch, by a settlement operator, a meter
    /// operator or an auditor (so strangers cannot make operators pay for reveals). The fraud
    /// window lasts at least until the response time ends, so a challenge at its last second
    /// leaves the full response time.
    function challengeAvailability(uint64 period, bytes32 groupId) external {
        if (
            !registry.isOperator(msg.sender) && !registry.hasRole(METER_OPERATOR, msg.sender)
                && !registry.hasRole(AUDITOR, msg.sender)
        ) revert AccessControlUnauthorizedAccount(msg.sender, AUDITOR);
        Batch memory b = _challengeable(period, groupId);
        if (b.count == 0) revert NothingToReveal(period, groupId);
        Challenge storage ch = _challenges[_batchKey(period, groupId, b.submittedAt)];
        if (ch.respondBy != 0) revert AlreadyChallenged(period, groupId);
        uint256 respondBy = block.timestamp + responseTime;
        uint256 closesAt = _closesAt(b, ch);
        (ch.respondBy, ch.closesAt, ch.challenger) =
            (uint40(respondBy), uint40(respondBy > closesAt ? respondBy : closesAt), msg.sender);
        emit AvailabilityChallenged(period, groupId, msg.sender, respondBy);
    }

    /// @notice Reveals leaves [firstIndex, firstIndex + leaves.length) of a challenged batch,
    /// continuing the caller's own progress (firstIndex 0 restarts it). The chunk that reaches
    /// `count` completes the tree: padding to 2^depth, then the root and totals must be the
    /// header's (`RevealMismatch` otherwise).
    function revealLeaves(uint64 period, bytes32 groupId, uint256 firstIndex, Leaf[] calldata leaves) external {
        (Batch memory b, bytes32 key) = _revealable(period, groupId);
        RevealProgress storage r = _reveals[key][msg.sender];
        uint256 next = firstIndex == 0 ? 0 : r.next;
        if (firstIndex != next) revert RevealOutOfSequence(firstIndex, next);
        uint256 end = next + leaves.length;
        if (leaves.length == 0 || end > b.count) revert RevealOutOfRange(end, b.count);

        bytes32[STACK_LEVELS] memory hs;
        uint256[STACK_LEVELS] memory ss;
        for (uint256 l; (next >> l) != 0; ++l) {
            if ((next >> l) & 1 == 1) (hs[l], ss[l]) = (r.hashes[l], r.sums[l]);
        }
        bytes32 last = _absorb(leaves, next, next == 0 ? bytes32(0) : r.lastMeterId, hs, ss);
        emit LeavesRevealed(period, groupId, msg.sender, firstIndex, _encoded(leaves));
        if (end < b.count) {
            for (uint256 l; (end >> l) != 0; ++l) {
                if ((end >> l) & 1 == 1) (r.hashes[l], r.sums[l]) = (hs[l], ss[l]);
            }
            (r.next, r.lastMeterId) = (uint32(end), last);
        } else {
            _complete(period, groupId, b, key, hs, ss);
        }
    }

    /// @dev The batch and its key, if it is outstanding and within its response time.
    function _revealable(uint64 period, bytes32 groupId) private view returns (Batch memory b, bytes32 key) {
        uint256 respondBy;
        (b, respondBy) = _outstanding(period, groupId);
        if (block.timestamp >= respondBy) revert ResponseTimeOver(period, groupId, respondBy);
        key = _batchKey(period, groupId, b.submittedAt);
    }

    /// @dev The batch and its response deadline, if it is pending on the chain, challenged and
    /// not revealed yet.
    function _outstanding(uint64 period, bytes32 groupId) private view returns (Batch memory b, uint256 respondBy) {
        b = _batches[period][groupId];
        if (b.status != STATUS_PENDING) revert BatchNotPending(period, groupId, b.status);
        if (period > _chains[groupId].tip) revert BatchOrphaned(period, groupId);
        Challenge memory ch = _challenges[_batchKey(period, groupId, b.submittedAt)];
        if (ch.respondBy == 0) revert NotChallenged(period, groupId);
        if (ch.revealed) revert AlreadyRevealed(period, groupId);
        respondBy = ch.respondBy;
    }

    /// @dev All `count` leaves are on the stack: the root must be the committed one.
    function _complete(
        uint64 period,
        bytes32 groupId,
        Batch memory b,
        bytes32 key,
        bytes32[STACK_LEVELS] memory hs,
        uint256[STACK_LEVELS] memory ss
    ) private {
        (bytes32 root, uint256 sums) = _fold(hs, ss, b.count);
        if (root != b.root || sums != (uint256(b.totalImportMwh) << 128 | b.totalExportMwh)) {
            revert RevealMismatch(root, sums >> 128, uint128(sums));
        }
        Challenge storage ch = _challenges[key];
        ch.revealed = true;
        uint256 closesAt = block.timestamp + responseTime; // time to prove fraud in the revealed data
        if (closesAt > ch.closesAt) ch.closesAt = uint40(closesAt);
        emit BatchRevealed(period, groupId, msg.sender, _closesAt(b, ch));
    }

    /// @notice Rejects a challenged batch whose leaves were not revealed within the response
    /// time (reason 12). Anyone, once `respondBy` has passed.
    function rejectUnrevealed(uint64 period, bytes32 groupId) external {
        (, uint256 respondBy) = _outstanding(period, groupId);
        if (block.timestamp < respondBy) revert ResponseTimeOpen(period, groupId, respondBy);
        _reject(period, groupId, REASON_WITHHELD);
    }

    /// @notice The data availability challenge of the batch now in the slot (all zero: none).
    function availabilityChallenge(uint64 period, bytes32 groupId) external view returns (Challenge memory) {
        return _challenges[_batchKey(period, groupId, _batches[period][groupId].submittedAt)];
    }

    /// @dev The leaves' calldata as is: consecutive 352-byte encodings (a static struct array).
    function _encoded(Leaf[] calldata leaves) private pure returns (bytes calldata raw) {
        assembly ("memory-safe") {
            raw.offset := leaves.offset
            raw.length := mul(leaves.length, LEAF_BYTES)
        }
    }

    /// @dev Pushes the chunk's leaf nodes (positions next, next + 1, ...) onto the stack of
    /// complete subtrees, checking strict meter order; returns the last meter id.
    function _absorb(
        Leaf[] calldata leaves,
        uint256 next,
        bytes32 last,
        bytes32[STACK_LEVELS] memory hs,
        uint256[STACK_LEVELS] memory ss
    ) private pure returns (bytes32) {
        for (uint256 i; i < leaves.length; ++i) {
            (bytes32 id, bytes32 h, uint256 s) = _leafNode(leaves, i, next);
            if (id <= last) revert RevealOutOfOrder(next);
            last = id;
            uint256 l;
            for (; (next >> l) & 1 == 1; ++l) (h, s) = _parent(hs[l], ss[l], h, s);
            (hs[l], ss[l]) = (h, s);
            ++next;
        }
        return last;
    }

    /// @dev The leaf node of leaves[i] (its id, leafHash, and deltas packed import << 128 |
    /// export), hashed straight from calldata (no memory growth per leaf). Reverts for a word
    /// wider than its field or a register that ran backwards.
    function _leafNode(Leaf[] calldata leaves, uint256 i, uint256 index)
        private
        pure
        returns (bytes32 id, bytes32 h, uint256 sums)
    {
        bool bad;
        uint256 dImp;
        uint256 dExp;
        assembly ("memory-safe") {
            let q := add(leaves.offset, mul(i, LEAF_BYTES))
            id := calldataload(q)
            let wide := 0
            for { let w := 1 } lt(w, 8) { w := add(w, 1) } {
                wide := or(wide, shr(64, calldataload(add(q, mul(w, 0x20)))))
            }
            wide := or(wide, shr(8, calldataload(add(q, 0x140))))
            let im := calldataload(add(q, 0x60))
            let ex := calldataload(add(q, 0x80))
            let pImp := calldataload(add(q, 0xc0))
            let pExp := calldataload(add(q, 0xe0))
            bad := or(iszero(iszero(wide)), or(lt(im, pImp), lt(ex, pExp)))
            dImp := sub(im, pImp)
            dExp := sub(ex, pExp)
            let p := mload(0x40)
            calldatacopy(p, q, LEAF_BYTES)
            mstore(0, keccak256(p, LEAF_BYTES))
            h := keccak256(0, 0x20)
        }
        if (bad) revert RevealMalformedLeaf(index);
        sums = dImp << 128 | dExp;
    }

    /// @dev The parent of two nodes with packed sums (each sum fits 96 bits: 2^32 uint64 deltas).
    function _parent(bytes32 lh, uint256 ls, bytes32 rh, uint256 rs) private pure returns (bytes32, uint256) {
        return (MerkleSum.hashPair(lh, ls >> 128, uint128(ls), rh, rs >> 128, uint128(rs)), ls + rs);
    }

    /// @dev The root over `count` leaves whose complete subtrees are on the stack, the positions
    /// from count to 2^depth being padding (EMPTY_NODE at the leaves, parents of padding above).
    function _fold(bytes32[STACK_LEVELS] memory hs, uint256[STACK_LEVELS] memory ss, uint256 count)
        private
        pure
        returns (bytes32 h, uint256 s)
    {
        uint256 d = MerkleSum.depth(count);
        if (count == 1 << d) return (hs[d], ss[d]);
        bytes32 pad; // the all-padding subtree at level l (sums 0)
        // h, s: the subtree at level l that holds position `count` (padding from there on)
        for (uint256 l; l < d; ++l) {
            if ((count >> l) & 1 == 1) (h, s) = _parent(hs[l], ss[l], h, s);
            else (h, s) = _parent(h, s, pad, 0);
            pad = MerkleSum.hashPair(pad, 0, 0, pad, 0, 0);
        }
    }
}
