// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice A registered meter point. Active periods are activeFrom..activeUntil inclusive.
struct Meter {
    address key;
    uint8 kind;
    bytes32 groupId;
    uint64 activeFrom;
    uint64 activeUntil;
    uint64 baselineImportMwh;
    uint64 baselineExportMwh;
}

/// @notice What the ledger and the grids read from the registry.
interface IMeterRegistry {
    function getMeter(bytes32 meterId) external view returns (Meter memory);
    /// @notice Block timestamp of the meter's registration (0: not registered).
    function registeredAt(bytes32 meterId) external view returns (uint64);
    function isOperator(address account) external view returns (bool);
    function quorum() external view returns (uint8);
    function hasRole(bytes32 role, address account) external view returns (bool);
}

/// @notice The one error every role check in this project raises (same selector as
/// OpenZeppelin's AccessControl, so callers decode one error for all contracts).
error AccessControlUnauthorizedAccount(address account, bytes32 neededRole);

/// @dev Role ids (MeterRegistry exposes them as METER_OPERATOR_ROLE and SETTLEMENT_OPERATOR_ROLE).
bytes32 constant METER_OPERATOR = keccak256("METER_OPERATOR_ROLE");
bytes32 constant SETTLEMENT_OPERATOR = keccak256("SETTLEMENT_OPERATOR_ROLE");
