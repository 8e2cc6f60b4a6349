// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {
    AccessControlUnauthorizedAccount,
    AUDITOR,
    METER_OPERATOR
} from "../interfaces/IMeterRegistry.sol";
import {Batch, Challenge, Leaf, STATUS_PENDING} from "../lib/SettlementTypes.sol";
import {BatchBook} from "./BatchBook.sol";
import {RevealTree} from "./RevealTree.sol";

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

    /// @notice Leaves per `responseTime` of a challenge's response window (`responseWindow`).
    uint256 public constant LEAVES_PER_RESPONSE = 1024;

    /// @dev A challenger's latest challenge (the slot; open while `_open`).
    struct OpenChallenge {
        uint64 period;
        bytes32 groupId;
    }

    /// @notice Each challenger's latest challenge: while it is open, the challenger cannot
    /// challenge another batch.
    mapping(address challenger => OpenChallenge) internal _openChallenges;

    /// @dev Bytes of one Leaf in calldata (11 words, a static struct).
    uint256 private constant LEAF_BYTES = 352;

    /// @notice The tree rebuilding of reveals and each revealer's progress, deployed with the
    /// ledger (a contract of its own, so the ledger fits EIP-170); only this ledger may use it.
    RevealTree public immutable revealTree = new RevealTree();

    event AvailabilityChallenged(uint64 indexed period, bytes32 indexed groupId, address challenger, uint256 respondBy);
    /// @notice Leaves [firstIndex, firstIndex + count) of a batch posted by `revealer`. The
    /// leaves themselves are the `leaves` argument of the revealLeaves call (its calldata, read
    /// back from the transaction: `node.availability.revealed_leaves`), not copied into the log
    /// (8 gas a byte, about 2,800 gas a leaf); `chunkHash` = keccak256 of those `count`
    /// consecutive 352-byte Leaf encodings (abi.encode of each Leaf), binding the log to them.
    /// The audit reads the chunks of the revealer named in BatchRevealed; a chunk at index 0
    /// restarts that revealer's progress.
    event LeavesRevealed(
        uint64 indexed period,
        bytes32 indexed groupId,
        address indexed revealer,
        uint256 firstIndex,
        uint256 count,
        bytes32 chunkHash
    );
    /// @notice The revealer's leaves rebuilt the committed root: the batch can no longer be
    /// rejected as withheld; fraud proofs are accepted until `closesAt`.
    event BatchRevealed(uint64 indexed period, bytes32 indexed groupId, address revealer, uint256 closesAt);

    error AlreadyChallenged(uint64 period, bytes32 groupId);
    /// @notice The challenger's previous challenge is still open (one open challenge each).
    error ChallengeOpen(address challenger, uint64 period, bytes32 groupId);
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
    /// (`revealLeaves`) within `responseWindow(count)`, or anyone may reject it
    /// (`rejectUnrevealed`). Only during the batch's fraud window, once per batch, by a
    /// settlement operator, a meter operator or an auditor (so strangers cannot make operators
    /// pay for reveals). The fraud window lasts at least until the response time ends, so a
    /// challenge at its last second leaves the full response time.
    /// Griefing limit: each challenger has at most one open challenge at a time (pending on the
    /// chain, unrevealed, within its response time); it closes once revealed, rejected, replaced,
    /// orphaned or timed out (then anyone may reject the batch). So one challenger forces at
    /// most one reveal per response window, while any other registered challenger can still
    /// challenge a truly withheld batch meanwhile, and its own budget returns at the latest
    /// when its open challenge times out.
    function challengeAvailability(uint64 period, bytes32 groupId) external {
        if (
            !registry.isOperator(msg.sender) && !registry.hasRole(METER_OPERATOR, msg.sender)
                && !registry.hasRole(AUDITOR, msg.sender)
        ) revert AccessControlUnauthorizedAccount(msg.sender, AUDITOR);
        Batch memory b = _challengeable(period, groupId);
        if (b.count == 0) revert NothingToReveal(period, groupId);
        Challenge storage ch = _challenges[period][groupId];
        if (ch.respondBy != 0) revert AlreadyChallenged(period, groupId);
        OpenChallenge storage o = _openChallenges[msg.sender];
        if (_open(o.period, o.groupId, msg.sender)) revert ChallengeOpen(msg.sender, o.period, o.groupId);
        (o.period, o.groupId) = (period, groupId);
        uint256 respondBy = block.timestamp + responseWindow(b.count);
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
        (bool complete, bytes32 root, uint256 sums) = revealTree.absorb(key, msg.sender, firstIndex, b.count, leaves);
        emit LeavesRevealed(period, groupId, msg.sender, firstIndex, leaves.length, _chunkHash(leaves));
        if (complete) _complete(period, groupId, b, root, sums);
    }

    /// @dev The batch and its key, if it is outstanding and within its response time.
    function _revealable(uint64 period, bytes32 groupId) private view returns (Batch memory b, bytes32 key) {
        uint256 respondBy;
        (b, respondBy) = _outstanding(period, groupId);
        if (block.timestamp >= respondBy) revert ResponseTimeOver(period, groupId, respondBy);
        key = _submissionKey(period, groupId);
    }

    /// @dev The batch and its response deadline, if it is pending on the chain, challenged and
    /// not revealed yet.
    function _outstanding(uint64 period, bytes32 groupId) private view returns (Batch memory b, uint256 respondBy) {
        b = _batches[period][groupId];
        if (b.status != STATUS_PENDING) revert BatchNotPending(period, groupId, b.status);
        if (period > _chains[groupId].tip) revert BatchOrphaned(period, groupId);
        Challenge memory ch = _challenges[period][groupId];
        if (ch.respondBy == 0) revert NotChallenged(period, groupId);
        if (ch.revealed) revert AlreadyRevealed(period, groupId);
        respondBy = ch.respondBy;
    }

    /// @dev All `count` leaves are revealed: their root must be the committed one.
    function _complete(uint64 period, bytes32 groupId, Batch memory b, bytes32 root, uint256 sums)
        private
    {
        if (root != b.root || sums != (uint256(b.totalImportMwh) << 128 | b.totalExportMwh)) {
            revert RevealMismatch(root, sums >> 128, uint128(sums));
        }
        Challenge storage ch = _challenges[period][groupId];
        ch.revealed = true;
        uint256 closesAt = block.timestamp + responseTime; // time to prove fraud in the revealed data
        if (closesAt > ch.closesAt) ch.closesAt = uint40(closesAt);
        emit BatchRevealed(period, groupId, msg.sender, _closesAt(b, ch));
    }

    /// @notice Rejects a challenged batch whose leaves were not revealed within the response
    /// time (reason 12). Anyone, once `respondBy` has passed. Its header is not banned (unlike
    /// a proven fraud): an honest batch whose co-signers were slow or censored can be submitted
    /// again, as a new submission that starts unchallenged, and revealed.
    function rejectUnrevealed(uint64 period, bytes32 groupId) external {
        (, uint256 respondBy) = _outstanding(period, groupId);
        if (block.timestamp < respondBy) revert ResponseTimeOpen(period, groupId, respondBy);
        _cut(period, groupId, REASON_WITHHELD);
    }

    /// @notice How long the leaves of a batch of `count` leaves have to be revealed in once it
    /// is challenged: `responseTime` for every started LEAVES_PER_RESPONSE leaves (a 10,000-leaf
    /// batch, 40 chunks of 256 leaves, gets 10 x responseTime), so a large reveal fits in time.
    function responseWindow(uint256 count) public view returns (uint256) {
        return responseTime * ((count + LEAVES_PER_RESPONSE - 1) / LEAVES_PER_RESPONSE);
    }

    /// @dev Whether `challenger`'s challenge of (period, groupId) is still open: on the batch now
    /// in that slot, which is pending on the chain, not revealed and within its response time.
    function _open(uint64 period, bytes32 groupId, address challenger) private view returns (bool) {
        Batch storage b = _batches[period][groupId];
        if (b.status != STATUS_PENDING || period > _chains[groupId].tip) return false;
        Challenge storage ch = _challenges[period][groupId];
        return ch.challenger == challenger && !ch.revealed && block.timestamp < ch.respondBy;
    }

    /// @notice The data availability challenge of the batch now in the slot (all zero: none).
    function availabilityChallenge(uint64 period, bytes32 groupId) external view returns (Challenge memory) {
        return _challenges[period][groupId];
    }

    /// @dev keccak256 of the leaves' calldata as is (consecutive 352-byte encodings), copied to
    /// free memory that the call to revealTree has already paid for.
    function _chunkHash(Leaf[] calldata leaves) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            let n := mul(leaves.length, LEAF_BYTES)
            calldatacopy(p, leaves.offset, n)
            h := keccak256(p, n)
        }
    }
}
