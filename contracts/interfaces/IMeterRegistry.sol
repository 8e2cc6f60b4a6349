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
    /// @notice The key that signs the meter's readings of `period` (after rotations).
    function keyAt(bytes32 meterId, uint64 period) external view returns (address);
    /// @notice Block timestamp of the meter's registration (0: not registered).
    function registeredAt(bytes32 meterId) external view returns (uint64);
    function isOperator(address account) external view returns (bool);
    function quorum() external view returns (uint8);
    /// @notice The operator set's configuration number (each change of set or quorum starts the
    /// next) and the quorum of that epoch.
    function epochQuorum() external view returns (uint32 epoch, uint8 k);
    /// @notice The settlement period's length (the ledger's must equal it).
    function periodSeconds() external view returns (uint64);
    function hasRole(bytes32 role, address account) external view returns (bool);
    /// @notice The grid a balance group or member grid (by its id) belongs to (zero: none).
    function parentGrid(bytes32 memberId) external view returns (address);
    /// @notice Records the calling grid (GRID_ROLE) as `memberId`'s one parent.
    function claimParent(bytes32 memberId) external;
    /// @notice The calling grid gives up being `memberId`'s parent.
    function releaseParent(bytes32 memberId) external;
}

/// @notice A balance group or grid already belongs to another grid (one parent each: it would
/// count twice in a cascade that contains both).
error MemberOfAnotherGrid(bytes32 memberId, address parent);

/// @notice The one error every role check in this project raises (same selector as
/// OpenZeppelin's AccessControl, so callers decode one error for all contracts).
error AccessControlUnauthorizedAccount(address account, bytes32 neededRole);

/// @dev Role ids (MeterRegistry exposes them as METER_OPERATOR_ROLE, SETTLEMENT_OPERATOR_ROLE, AUDITOR_ROLE).
bytes32 constant METER_OPERATOR = keccak256("METER_OPERATOR_ROLE");
bytes32 constant SETTLEMENT_OPERATOR = keccak256("SETTLEMENT_OPERATOR_ROLE");
/// @dev A registered party that may challenge a batch's data availability without operating
/// meters or settlement (a regulator, a community's auditor).
bytes32 constant AUDITOR = keccak256("AUDITOR_ROLE");
/// @dev A deployed Grid contract (granted by the admin): may claim its members in the registry's
/// one shared index of grid membership.
bytes32 constant GRID = keccak256("GRID_ROLE");
