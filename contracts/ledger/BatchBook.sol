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
    Leaf,
    SumNode,
    STATUS_PENDING,
    STATUS_FINAL,
    STATUS_REJECTED
} from "../lib/SettlementTypes.sol";
import {MerkleSum} from "../lib/MerkleSum.sol";

/// @title BatchBook
/// @notice The period ledger's book of batches: k-of-n co-signed headers per period and balance
/// group, the challenge window, finalization, rejection, and the EIP-712 digests.
/// @dev Finality per group only moves forward: a batch for a period at or before the group's
/// latest final period can neither be submitted nor finalized, so a meter's register chain
/// (each leaf counting from the latest earlier final leaf) never overlaps.
abstract contract BatchBook is EIP712 {
    bytes32 public constant READING_TYPEHASH =
        keccak256("Reading(bytes32 meterId,uint64 period,uint64 timestamp,uint64 importMwh,uint64 exportMwh)");
    bytes32 public constant BATCH_TYPEHASH = keccak256(
        "BatchHeader(uint64 period,bytes32 groupId,bytes32 root,uint64 totalImportMwh,uint64 totalExportMwh,uint32 count)"
    );

    /// @notice The shortest challenge window a ledger accepts (seconds). A forged batch must
    /// never finalize at once; field deployments set hours (ARCHITECTURE.md), the demo seconds.
    uint64 public constant MIN_CHALLENGE_WINDOW = 1;

    IMeterRegistry public immutable registry;
    uint64 public immutable periodSeconds;
    /// @notice Seconds after submission during which fraud proofs are accepted.
    uint64 public immutable challengeWindow;

    mapping(uint64 period => mapping(bytes32 groupId => Batch)) internal _batches;
    /// @notice Rejected headers by `headerHash` (period, group, root, totals, count): such a
    /// header can never be submitted again, while a corrected header over the same tree can.
    mapping(bytes32 headerHash => bool) public headerRejected;
    /// @notice The latest finalized period of each group (0: none yet).
    mapping(bytes32 groupId => uint64) public lastFinalPeriod;

    event BatchSubmitted(
        uint64 indexed period,
        bytes32 indexed groupId,
        bytes32 root,
        uint64 totalImportMwh,
        uint64 totalExportMwh,
        uint32 count,
        address submitter
    );
    event BatchFinalized(uint64 indexed period, bytes32 indexed groupId, bytes32 root);
    event BatchRejected(uint64 indexed period, bytes32 indexed groupId, bytes32 root, uint8 reason, address prover);

    error InvalidConfig();
    /// @notice A header with count 0 whose root or totals are not the empty node's.
    error EmptyBatch();
    error InvalidGroup();
    error PeriodNotClosed(uint64 period, uint256 closesAt);
    error PeriodSuperseded(uint64 period, uint64 lastFinalPeriod);
    error BatchExists(uint64 period, bytes32 groupId, uint8 status);
    error HeaderRejected(bytes32 headerHash);
    error QuorumNotSet();
    error QuorumNotReached(uint256 signatures, uint256 quorum);
    error SignersNotAscending(uint256 index, address signer);
    error NotAnOperator(address signer);
    error BatchNotPending(uint64 period, bytes32 groupId, uint8 status);
    error ChallengeWindowOpen(uint64 period, bytes32 groupId, uint256 closesAt);
    error ChallengeWindowClosed(uint64 period, bytes32 groupId, uint256 closedAt);
    error BadProof();
    error IndexOutOfRange(uint256 index, uint256 count);
    error RegisterRegression(bytes32 meterId);

    constructor(address registry_, uint64 periodSeconds_, uint64 challengeWindow_) EIP712("EnergySettlement", "1") {
        if (registry_ == address(0) || periodSeconds_ == 0 || challengeWindow_ < MIN_CHALLENGE_WINDOW) {
            revert InvalidConfig();
        }
        registry = IMeterRegistry(registry_);
        periodSeconds = periodSeconds_;
        challengeWindow = challengeWindow_;
    }

    modifier onlyOperator() {
        if (!registry.isOperator(msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, SETTLEMENT_OPERATOR);
        }
        _;
    }

    /// @notice Accepts a batch header co-signed by at least `quorum` distinct settlement
    /// operators and opens its challenge window. Replaces a rejected batch of the same period
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
        Batch storage b = _batches[h.period][h.groupId];
        uint8 status = b.status;
        if (status == STATUS_PENDING || status == STATUS_FINAL) revert BatchExists(h.period, h.groupId, status);
        uint64 lastFinal = lastFinalPeriod[h.groupId];
        if (h.period <= lastFinal) revert PeriodSuperseded(h.period, lastFinal);
        bytes32 hh = headerHash(h);
        if (headerRejected[hh]) revert HeaderRejected(hh);
        _checkQuorum(_hashTypedDataV4(hh), signatures);
        _batches[h.period][h.groupId] = Batch(
            h.root, h.totalImportMwh, h.totalExportMwh, h.count, uint40(block.timestamp), STATUS_PENDING
        );
        emit BatchSubmitted(h.period, h.groupId, h.root, h.totalImportMwh, h.totalExportMwh, h.count, msg.sender);
    }

    /// @notice Finalizes a pending batch once its challenge window has passed.
    function finalize(uint64 period, bytes32 groupId) external onlyOperator {
        Batch storage b = _batches[period][groupId];
        uint8 status = b.status;
        if (status != STATUS_PENDING) revert BatchNotPending(period, groupId, status);
        uint256 closesAt = uint256(b.submittedAt) + challengeWindow;
        if (block.timestamp < closesAt) revert ChallengeWindowOpen(period, groupId, closesAt);
        uint64 lastFinal = lastFinalPeriod[groupId];
        if (period <= lastFinal) revert PeriodSuperseded(period, lastFinal);
        b.status = STATUS_FINAL;
        lastFinalPeriod[groupId] = period;
        emit BatchFinalized(period, groupId, b.root);
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
        return _hashTypedDataV4(headerHash(h));
    }

    /// @notice The EIP-712 struct hash of a batch header (the key of `headerRejected`).
    function headerHash(BatchHeader calldata h) public pure returns (bytes32) {
        return keccak256(abi.encode(BATCH_TYPEHASH, h));
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

    function _checkQuorum(bytes32 digest, bytes[] calldata signatures) private view {
        uint256 k = registry.quorum();
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

    /// @dev The batch, if it is pending and its challenge window still open.
    function _challengeable(uint64 period, bytes32 groupId) internal view returns (Batch memory b) {
        b = _batches[period][groupId];
        if (b.status != STATUS_PENDING) revert BatchNotPending(period, groupId, b.status);
        uint256 closesAt = uint256(b.submittedAt) + challengeWindow;
        if (block.timestamp >= closesAt) revert ChallengeWindowClosed(period, groupId, closesAt);
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

    function _reject(uint64 period, bytes32 groupId, uint8 reason) internal {
        Batch storage b = _batches[period][groupId];
        b.status = STATUS_REJECTED;
        bytes32 root = b.root;
        headerRejected[keccak256(
            abi.encode(BATCH_TYPEHASH, period, groupId, root, b.totalImportMwh, b.totalExportMwh, b.count)
        )] = true;
        emit BatchRejected(period, groupId, root, reason, msg.sender);
    }
}
