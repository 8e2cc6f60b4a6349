// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice A settled reading: the signed reading plus the register it counts from (ARCHITECTURE.md).
/// Its `abi.encode` equals the shared leaf encoding's field list.
struct Leaf {
    bytes32 meterId;
    uint64 period;
    uint64 timestamp;
    uint64 importMwh;
    uint64 exportMwh;
    uint64 prevPeriod;
    uint64 prevImportMwh;
    uint64 prevExportMwh;
    bytes32 r;
    bytes32 s;
    uint8 v;
}

/// @notice A Merkle-sum tree node: its hash and the import/export delta sums below it. The sums
/// are hashed as full 256-bit words, so proofs carry them as such: a committed sum wider than
/// uint64 can be shown (and is itself fraud, FraudProofs.REASON_BAD_WIDTH).
struct SumNode {
    bytes32 hash;
    uint256 importMwh;
    uint256 exportMwh;
}

/// @notice What the settlement operators co-sign for one period and balance group, under the
/// operator epoch (MeterRegistry.operatorEpoch) whose set signs it.
struct BatchHeader {
    uint64 period;
    bytes32 groupId;
    bytes32 root;
    uint64 totalImportMwh;
    uint64 totalExportMwh;
    uint32 count;
    uint32 epoch;
}

/// @notice A batch as stored: the root in one slot, everything else packed in the second.
/// `parent` is the period of the group's previous live batch when it was submitted (0: none),
/// the batch its leaves count from.
struct Batch {
    bytes32 root;
    uint64 totalImportMwh;
    uint64 totalExportMwh;
    uint32 count;
    uint40 submittedAt;
    uint8 status;
    uint48 parent;
}

/// @notice A group's chain of batches: finality per group only moves forward along it.
struct GroupChain {
    uint64 lastFinal; // the latest final period (0: none yet)
    uint64 tip; // the latest live submitted period: pending batches above it are orphans
    uint64 highWater; // the latest period ever submitted
    uint64 orphansFrom; // after the last rejection: orphans lie in [max(orphansFrom, tip + 1), highWater]
}

/// @notice A data availability challenge against one submitted batch (one slot). `respondBy`
/// 0: not challenged. `closesAt` is when its fraud window ends (extended by the challenge and the
/// reveal, never shortened).
struct Challenge {
    uint40 respondBy;
    uint40 closesAt;
    bool revealed;
    address challenger;
}

uint8 constant STATUS_NONE = 0;
uint8 constant STATUS_PENDING = 1;
uint8 constant STATUS_FINAL = 2;
uint8 constant STATUS_REJECTED = 3;
