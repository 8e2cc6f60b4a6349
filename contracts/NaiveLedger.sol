// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {
    IMeterRegistry,
    Meter,
    AccessControlUnauthorizedAccount,
    SETTLEMENT_OPERATOR
} from "./interfaces/IMeterRegistry.sol";

/// @title NaiveLedger
/// @notice Gas baseline only (bench/gas.py), not part of the settlement: the StromDAO-style
/// design that writes every signed reading in its own transaction, checks it against the meter's
/// stored last register and adds its delta to the group's period totals.
contract NaiveLedger is EIP712 {
    bytes32 public constant READING_TYPEHASH =
        keccak256("Reading(bytes32 meterId,uint64 period,uint64 timestamp,uint64 importMwh,uint64 exportMwh)");

    struct Register {
        uint64 period;
        uint64 timestamp;
        uint64 importMwh;
        uint64 exportMwh;
    }

    struct Totals {
        uint64 importMwh;
        uint64 exportMwh;
        uint32 count;
    }

    IMeterRegistry public immutable registry;
    mapping(bytes32 meterId => Register) public lastRegister;
    mapping(uint64 period => mapping(bytes32 groupId => Totals)) public totals;

    event ReadingStored(bytes32 indexed meterId, uint64 indexed period, uint64 importMwh, uint64 exportMwh);

    error BadSignature(bytes32 meterId);
    error NotNewer(bytes32 meterId, uint64 period);
    error RegisterRegression(bytes32 meterId);

    constructor(address registry_) EIP712("EnergySettlement", "1") {
        registry = IMeterRegistry(registry_);
    }

    /// @notice Stores one signed reading (settlement operators relay them).
    function submitReading(
        bytes32 meterId,
        uint64 period,
        uint64 timestamp,
        uint64 importMwh,
        uint64 exportMwh,
        bytes calldata signature
    ) external {
        if (!registry.isOperator(msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, SETTLEMENT_OPERATOR);
        }
        Meter memory m = registry.getMeter(meterId);
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(READING_TYPEHASH, meterId, period, timestamp, importMwh, exportMwh))
        );
        if (m.key == address(0) || ECDSA.recover(digest, signature) != m.key) revert BadSignature(meterId);
        Register memory last = lastRegister[meterId];
        if (last.timestamp == 0) last = Register(m.activeFrom - 1, 0, m.baselineImportMwh, m.baselineExportMwh);
        if (period <= last.period) revert NotNewer(meterId, period);
        if (importMwh < last.importMwh || exportMwh < last.exportMwh) revert RegisterRegression(meterId);
        lastRegister[meterId] = Register(period, timestamp, importMwh, exportMwh);
        Totals storage t = totals[period][m.groupId];
        t.importMwh += importMwh - last.importMwh;
        t.exportMwh += exportMwh - last.exportMwh;
        t.count += 1;
        emit ReadingStored(meterId, period, importMwh, exportMwh);
    }
}
