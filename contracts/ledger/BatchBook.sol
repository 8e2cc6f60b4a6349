// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {
    IMeterRegistry,
    AccessControlUnauthorizedAccount,
    SETTLEMENT_OPERATOR
} from "../interfaces/IMeterRegistry.sol";
import {
    Batch,
    BatchHeader,
    Challenge,
    GroupChain,
    Leaf,
    SumNode,
    STATUS_NONE,
    STATUS_PENDING,
    STATUS_FINAL,
    STATUS_REJECTED
} from "../lib/SettlementTypes.sol";
import {MerkleSum} from "../lib/MerkleSum.sol";

/// @title BatchBook
/// @notice The period ledger's book of batches: k-of-n co-signed headers per period and balance
/// group, the challenge window, finalization, rejection, and the EIP-712 digests.
/// @dev Each group's batches form one chain: a batch is submitted on top of the group's latest
/// live batch (its parent, final or pending), its leaves count from the chain below it, it
/// finalizes only once its parent is final (so the earliest finalizes first, whoever calls), and
/// a rejection cuts the chain at the rejected batch's parent: its descendants become orphans,
/// which never finalize and are overwritten (or, when skipped, rejected) as the chain regrows.
/// The challenge window is therefore independent of the period length.
abstract contract BatchBook is EIP712 {
    bytes32 public constant READING_TYPEHASH =
        keccak256("Reading(bytes32 meterId,uint64 period,uint64 timestamp,uint64 importMwh,uint64 exportMwh)");
    bytes32 public constant BATCH_TYPEHASH = keccak256(
        "BatchHeader(uint64 period,bytes32 groupId,bytes32 root,uint64 totalImportMwh,uint64 totalExportMwh,uint32 count,uint32 epoch)"
    );

    /// @notice The shortest challenge window a ledger accepts (seconds). A forged batch must
    /// never finalize at once; field deployments set hours (ARCHITECTURE.md), the demo seconds.
    uint64 public constant MIN_CHALLENGE_WINDOW = 1;

    /// @notice The shortest response time to a data availability challenge a ledger accepts.
    uint64 public constant MIN_RESPONSE_TIME = 1;

    IMeterRegistry public immutable registry;
    uint64 public immutable periodSeconds;
    /// @notice Seconds after submission during which fraud proofs are accepted.
    uint64 public immutable challengeWindow;
    /// @notice Seconds a challenged batch's leaves have to be revealed in (DataAvailability).
    uint64 public immutable responseTime;

    mapping(uint64 period => mapping(bytes32 groupId => Batch)) internal _batches;
    /// @notice Rejected headers by their content hash (`_contentHash`: period, group, root, totals, count; not the
    /// epoch) proven false in their data (FraudProofs: not for context-judged reasons): such a
    /// header can never be submitted again, under no epoch, while a corrected header over the
    /// same tree can.
    mapping(bytes32 contentHash => bool) public headerRejected;
    mapping(bytes32 groupId => GroupChain) internal _chains;
    /// @dev The data availability challenge of the submission now in each slot: cleared when the
    /// slot is submitted again (so a resubmission starts unchallenged even within the earlier
    /// submission's block or timestamp), read by the fraud proofs and finalize at no extra cost.
    mapping(uint64 period => mapping(bytes32 groupId => Challenge)) internal _challenges;
    /// @notice How often a slot was submitted again after its first submission (number 0): the
    /// number of its current submission. It never repeats, so records kept per submission
    /// (`_submissionKey`: reveal progress) never carry over to a later one, even within one block.
    mapping(uint64 period => mapping(bytes32 groupId => uint256)) public submissionNumber;

    event BatchSubmitted(
        uint64 indexed period,
        bytes32 indexed groupId,
        bytes32 root,
        uint64 totalImportMwh,
        uint64 totalExportMwh,
        uint32 count,
        address submitter,
        uint32 epoch
    );
    event BatchFinalized(uint64 indexed period, bytes32 indexed groupId, bytes32 root);
    event BatchRejected(uint64 indexed period, bytes32 indexed groupId, bytes32 root, uint8 reason, address prover);

    /// @notice BatchRejected reason of an orphan (a descendant of a rejected batch) that a new
    /// batch skips over.
    uint8 public constant REASON_ORPHANED = 11;

    error InvalidConfig();
    /// @notice A header with count 0 whose root or totals are not the empty node's.
    error EmptyBatch();
    error InvalidGroup();
    error PeriodNotClosed(uint64 period, uint256 closesAt);
    error PeriodSuperseded(uint64 period, uint64 lastFinalPeriod);
    error BatchExists(uint64 period, bytes32 groupId, uint8 status);
    error HeaderRejected(bytes32 contentHash);
    /// @notice The header names another epoch than the operator set's current one: its
    /// signatures were made for another set (collect them again under the current epoch).
    error WrongEpoch(uint32 headerEpoch, uint32 currentEpoch);
    error QuorumNotSet();
    error QuorumNotReached(uint256 signatures, uint256 quorum);
    error SignersNotAscending(uint256 index, address signer);
    error NotAnOperator(address signer);
    error BatchNotPending(uint64 period, bytes32 groupId, uint8 status);
    /// @notice The period is at or below the group's chain tip: only the next batch can be submitted.
    error BehindTip(uint64 period, uint64 tip);
    /// @notice A descendant of a rejected batch: it can neither be challenged nor finalized.
    error BatchOrphaned(uint64 period, bytes32 groupId);
    /// @notice The batch's parent is not final yet.
    error ParentNotFinal(uint64 period, bytes32 groupId, uint64 parent);
    error ChallengeWindowOpen(uint64 period, bytes32 groupId, uint256 closesAt);
    /// @notice The batch was challenged for its data and its leaves have not been revealed.
    error NotRevealed(uint64 period, bytes32 groupId, uint256 respondBy);
    error ChallengeWindowClosed(uint64 period, bytes32 groupId, uint256 closedAt);
    error BadProof();
    error IndexOutOfRange(uint256 index, uint256 count);
    error RegisterRegression(bytes32 meterId);

    constructor(address registry_, uint64 periodSeconds_, uint64 challengeWindow_, uint64 responseTime_)
        EIP712("EnergySettlement", "1")
    {
        if (
            registry_ == address(0) || periodSeconds_ == 0 || challengeWindow_ < MIN_CHALLENGE_WINDOW
                || responseTime_ < MIN_RESPONSE_TIME || IMeterRegistry(registry_).periodSeconds() != periodSeconds_
        ) revert InvalidConfig();
        registry = IMeterRegistry(registry_);
        periodSeconds = periodSeconds_;
        challengeWindow = challengeWindow_;
        responseTime = responseTime_;
    }

    modifier onlyOperator() {
        if (!registry.isOperator(msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, SETTLEMENT_OPERATOR);
        }
        _;
    }

    /// @notice Accepts a batch header co-signed by at least `quorum` distinct settlement
    /// operators of the current operator epoch (which the header names) and opens its challenge
    /// window. A batch once accepted is decided (challenged, finalized) whatever the operator set
    /// becomes: nothing after acceptance depends on who signed it. Replaces a rejected batch of the same period
    /// and group, but never with a rejected header. An empty batch (count 0, root 0x00..00,
    /// totals 0) records a period in which the group settled nothing, so grids can roll it up.
    /// @param h the header (period, groupId, root, totals, count)
    /// @param signatures 65-byte r||s||v EIP-712 signatures over `batchDigest(h)`, sorted by
    /// signer address ascending
    function submitBatch(BatchHeader calldata h, bytes[] calldata signatures) external onlyOperator {
        if (h.count == 0 && (h.root != bytes32(0) || h.totalImportMwh != 0 || h.totalExportMwh != 0)) {
            revert EmptyBatch(); // no leaves: the root is the empty node
        }
        if (h.groupId == bytes32(0)) revert InvalidGroup();
        uint256 closesAt = (uint256(h.period) + 1) * periodSeconds;
        if (closesAt > block.timestamp) revert PeriodNotClosed(h.period, closesAt);
        GroupChain memory c = _chains[h.groupId];
        if (h.period <= c.tip) {
            uint8 status = _batches[h.period][h.groupId].status;
            if (status == STATUS_PENDING || status == STATUS_FINAL) revert BatchExists(h.period, h.groupId, status);
            if (h.period <= c.lastFinal) revert PeriodSuperseded(h.period, c.lastFinal);
            revert BehindTip(h.period, c.tip);
        }
        bytes32 ch = _contentHash(h.period, h.groupId, h.root, h.totalImportMwh, h.totalExportMwh, h.count);
        if (headerRejected[ch]) revert HeaderRejected(ch);
        (uint32 epoch, uint8 k) = registry.epochQuorum();
        if (h.epoch != epoch) revert WrongEpoch(h.epoch, epoch);
        _checkQuorum(batchDigest(h), signatures, k);
        if (c.tip + 1 < h.period && c.tip < c.highWater) _rejectSkippedOrphans(h.groupId, c, h.period);
        // whatever the slot held (none, rejected, or an orphan) is replaced, under a new number
        if (_batches[h.period][h.groupId].status != STATUS_NONE) {
            ++submissionNumber[h.period][h.groupId]; // a new submission: none of the earlier's records
            delete _challenges[h.period][h.groupId];
        }
        _batches[h.period][h.groupId] = Batch(
            h.root, h.totalImportMwh, h.totalExportMwh, h.count, uint40(block.timestamp), STATUS_PENDING,
            uint48(c.tip) // below 2^48: the period has closed
        );
        _chains[h.groupId] =
            GroupChain(c.lastFinal, h.period, h.period > c.highWater ? h.period : c.highWater, c.orphansFrom);
        emit BatchSubmitted(
            h.period, h.groupId, h.root, h.totalImportMwh, h.totalExportMwh, h.count, msg.sender, h.epoch
        );
    }

    /// @notice Finalizes a pending batch once its challenge window has passed and its parent
    /// is final (so a group's batches finalize in chain order).
    function finalize(uint64 period, bytes32 groupId) external onlyOperator {
        Batch storage b = _batches[period][groupId];
        uint8 status = b.status;
        if (status != STATUS_PENDING) revert BatchNotPending(period, groupId, status);
        GroupChain storage c = _chains[groupId];
        if (period > c.tip) revert BatchOrphaned(period, groupId);
        Challenge memory ch = _challenges[period][groupId];
        uint256 closesAt = _closesAt(b, ch);
        if (block.timestamp < closesAt) revert ChallengeWindowOpen(period, groupId, closesAt);
        if (ch.respondBy != 0 && !ch.revealed) revert NotRevealed(period, groupId, ch.respondBy);
        if (b.parent != c.lastFinal) revert ParentNotFinal(period, groupId, b.parent);
        b.status = STATUS_FINAL;
        c.lastFinal = period;
        emit BatchFinalized(period, groupId, b.root);
    }

    /// @notice The latest finalized period of a group (0: none yet).
    function lastFinalPeriod(bytes32 groupId) external view returns (uint64) {
        return _chains[groupId].lastFinal;
    }

    /// @notice A group's chain: latest final period, tip (latest live batch), latest period ever
    /// submitted, and where orphans may start.
    function groupChain(bytes32 groupId) external view returns (GroupChain memory) {
        return _chains[groupId];
    }

    /// @notice The batch of a period and group (status 0 none, 1 pending, 2 final, 3 rejected).
    function getBatch(uint64 period, bytes32 groupId) external view returns (Batch memory) {
        return _batches[period][groupId];
    }

    /// @notice The EIP-712 domain separator shared by readings and batch headers.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice EIP-712 digest of a batch header (what operators sign).
    function batchDigest(BatchHeader calldata h) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(BATCH_TYPEHASH, h)));
    }

    /// @dev What a batch says, whatever epoch signed it (the key of `headerRejected`):
    /// keccak256(abi.encode(period, groupId, root, totalImportMwh, totalExportMwh, count)).
    function _contentHash(uint64 period, bytes32 groupId, bytes32 root, uint64 imp, uint64 exp, uint32 count)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(period, groupId, root, imp, exp, count));
    }

    /// @notice EIP-712 digest of the reading inside a leaf (what the meter key signs).
    function readingDigest(Leaf calldata leaf) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    READING_TYPEHASH, leaf.meterId, leaf.period, leaf.timestamp, leaf.importMwh, leaf.exportMwh
                )
            )
        );
    }

    /// @notice The leaf hash of the shared encoding.
    function leafHash(Leaf calldata leaf) external pure returns (bytes32) {
        return MerkleSum.leafHash(leaf);
    }

    /// @notice The inner-node hash of the shared encoding.
    function parentHash(SumNode calldata left, SumNode calldata right) external pure returns (bytes32) {
        return MerkleSum.parentHash(left, right);
    }

    function _checkQuorum(bytes32 digest, bytes[] calldata signatures, uint256 k) private view {
        if (k == 0) revert QuorumNotSet();
        if (signatures.length < k) revert QuorumNotReached(signatures.length, k);
        address last;
        for (uint256 i; i < signatures.length; ++i) {
            address signer = ECDSA.recover(digest, signatures[i]);
            if (signer <= last) revert SignersNotAscending(i, signer);
            if (!registry.isOperator(signer)) revert NotAnOperator(signer);
            last = signer;
        }
    }

    /// @dev Whether (period, groupId) is on the group's live chain: final, or pending at or below the tip.
    function _onChain(uint64 period, bytes32 groupId) internal view returns (bool) {
        uint8 status = _batches[period][groupId].status;
        return status == STATUS_FINAL || (status == STATUS_PENDING && period <= _chains[groupId].tip);
    }

    /// @dev Rejects the orphans (pending, above the tip) that a batch at `period` skips over,
    /// so that no pending batch below the new tip is off the chain. Only after a rejection cut
    /// the chain, and only up to the highest period ever submitted.
    function _rejectSkippedOrphans(bytes32 groupId, GroupChain memory c, uint64 period) private {
        uint64 end = period <= c.highWater ? period : c.highWater + 1;
        for (uint64 q = c.orphansFrom > c.tip ? c.orphansFrom : c.tip + 1; q < end; ++q) {
            Batch storage o = _batches[q][groupId];
            if (o.status == STATUS_PENDING) {
                o.status = STATUS_REJECTED;
                emit BatchRejected(q, groupId, o.root, REASON_ORPHANED, msg.sender);
            }
        }
    }

    /// @dev The batch, if it is pending on the live chain and its challenge window still open.
    function _challengeable(uint64 period, bytes32 groupId) internal view returns (Batch memory b) {
        b = _batches[period][groupId];
        if (b.status != STATUS_PENDING) revert BatchNotPending(period, groupId, b.status);
        if (period > _chains[groupId].tip) revert BatchOrphaned(period, groupId);
        uint256 closesAt = _closesAt(b, _challenges[period][groupId]);
        if (block.timestamp >= closesAt) revert ChallengeWindowClosed(period, groupId, closesAt);
    }

    /// @dev When a batch's fraud window ends: its challenge window, extended by a data
    /// availability challenge and its reveal (Challenge.closesAt).
    function _closesAt(Batch memory b, Challenge memory ch) internal view returns (uint256) {
        uint256 end = uint256(b.submittedAt) + challengeWindow;
        return ch.closesAt > end ? ch.closesAt : end;
    }

    /// @dev The key of the current submission of a slot: (period, groupId, its submission
    /// number), never its time (a slot can be rejected and submitted again within one timestamp).
    function _submissionKey(uint64 period, bytes32 groupId) internal view returns (bytes32) {
        return keccak256(abi.encode(period, groupId, submissionNumber[period][groupId]));
    }

    /// @dev Reverts with BadProof unless `node` sits at (`level`, `index`) of the batch's tree,
    /// whose root node is (root, totalImportMwh, totalExportMwh).
    function _verifyNode(Batch memory b, SumNode memory node, uint256 level, uint256 index, SumNode[] calldata proof)
        internal
        pure
    {
        uint256 d = MerkleSum.depth(b.count);
        if (level > d) revert BadProof();
        SumNode memory top = MerkleSum.computeRoot(node, index, proof, d - level);
        if (top.hash != b.root || top.importMwh != b.totalImportMwh || top.exportMwh != b.totalExportMwh) {
            revert BadProof();
        }
    }

    /// @dev Verifies a leaf (at index < count) with the deltas of its own fields as its sums.
    function _verifyLeaf(Batch memory b, Leaf calldata leaf, uint256 index, SumNode[] calldata proof) internal pure {
        if (index >= b.count) revert IndexOutOfRange(index, b.count);
        if (leaf.importMwh < leaf.prevImportMwh || leaf.exportMwh < leaf.prevExportMwh) {
            revert RegisterRegression(leaf.meterId);
        }
        SumNode memory node = SumNode(
            MerkleSum.leafHash(leaf), leaf.importMwh - leaf.prevImportMwh, leaf.exportMwh - leaf.prevExportMwh
        );
        _verifyNode(b, node, 0, index, proof);
    }

    /// @dev Rejects for proven fraud: the header is banned for good, then the chain is cut.
    function _reject(uint64 period, bytes32 groupId, uint8 reason) internal {
        Batch storage b = _batches[period][groupId];
        headerRejected[_contentHash(period, groupId, b.root, b.totalImportMwh, b.totalExportMwh, b.count)] = true;
        _cut(period, groupId, reason);
    }

    /// @dev Rejects without banning the header (nothing about its data was proven wrong): the
    /// same header may be submitted again. Cuts the group's chain at the batch's parent.
    function _cut(uint64 period, bytes32 groupId, uint8 reason) internal {
        Batch storage b = _batches[period][groupId];
        b.status = STATUS_REJECTED;
        GroupChain storage c = _chains[groupId];
        (c.tip, c.orphansFrom) = (b.parent, period + 1); // its descendants are orphans now
        emit BatchRejected(period, groupId, b.root, reason, msg.sender);
    }
}
