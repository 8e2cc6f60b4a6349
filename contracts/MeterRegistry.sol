// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl, IAccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {AccessControlEnumerable} from "@openzeppelin/contracts/access/extensions/AccessControlEnumerable.sol";
import {
    Meter, AUDITOR, GRID, METER_OPERATOR, SETTLEMENT_OPERATOR, MemberOfAnotherGrid
} from "./interfaces/IMeterRegistry.sol";

/// @title MeterRegistry
/// @notice Meter points (key, kind, balance group, active window, baseline registers), the roles,
/// the settlement operator set and its quorum k of n.
/// @dev Roles: DEFAULT_ADMIN_ROLE governs roles, operators and quorum; METER_OPERATOR_ROLE
/// registers meters; AUDITOR_ROLE may challenge data availability; SETTLEMENT_OPERATOR_ROLE
/// members are the operator set that co-signs batches. There is one admin at a time, handed on
/// in two steps with a delay (OpenZeppelin's AccessControlDefaultAdminRules: the new admin
/// accepts after `defaultAdminDelay()`; the members can see a transfer coming and it can be
/// cancelled), so a leaked or mistyped admin address is not the end of the registry. Every role
/// change is an event (RoleGranted, RoleRevoked, DefaultAdminTransferScheduled, ...).
contract MeterRegistry is AccessControlDefaultAdminRules, AccessControlEnumerable {
    bytes32 public constant METER_OPERATOR_ROLE = METER_OPERATOR;
    bytes32 public constant SETTLEMENT_OPERATOR_ROLE = SETTLEMENT_OPERATOR;
    /// @notice May challenge a batch's data availability (PeriodLedger.challengeAvailability).
    bytes32 public constant AUDITOR_ROLE = AUDITOR;
    /// @notice A deployed Grid: may claim its members (claimParent), granted by the admin.
    bytes32 public constant GRID_ROLE = GRID;
    uint8 public constant KIND_CONSUMPTION = 0;
    uint8 public constant KIND_GENERATION = 1;
    uint8 public constant KIND_PROSUMER = 2;
    uint8 public constant KIND_STORAGE = 3;
    uint8 public constant KIND_BOUNDARY = 4;

    /// @dev A meter point as stored: Meter's fields with the registration time packed into the
    /// key's slot (three slots a meter instead of four: registration is most of a registry's gas).
    struct Record {
        address key;
        uint8 kind;
        uint64 registeredAt;
        bytes32 groupId;
        uint64 activeFrom;
        uint64 activeUntil;
        uint64 baselineImportMwh;
        uint64 baselineExportMwh;
    }

    mapping(bytes32 meterId => Record) private _meters;

    /// @dev A meter's signing key from `fromPeriod` on (the registered key before the first).
    struct KeyChange {
        address key;
        uint64 fromPeriod;
    }

    /// @dev The metering point each exchanged-in meter serves (zero: the meter is its own point).
    mapping(bytes32 meterId => bytes32 pointId) private _pointOf;

    /// @dev Each meter's key changes, in ascending fromPeriod.
    mapping(bytes32 meterId => KeyChange[]) private _keyChanges;
    /// @notice The settlement period's length (the ledger's, checked at its deployment): a change
    /// to a meter point takes effect from a period that has not ended, so that nothing submitted
    /// (a batch is submitted after its period) changes meaning.
    uint64 public immutable periodSeconds;
    /// @notice Distinct operator signatures a batch header needs (0 until governed).
    uint8 public quorum;
    /// @notice The operator set's configuration number: every change of the set or the quorum
    /// starts the next epoch (OperatorEpochStarted). A batch header names the epoch its
    /// signatures were made under and counts only in that epoch, as OCR2's config digest does:
    /// signatures collected for an earlier set, or by a removed operator, never count again.
    uint32 public operatorEpoch;
    /// @notice The one shared index of grid membership: the grid each balance group or member
    /// grid (by its id) belongs to, zero for none. A member has one parent, so no cascade counts
    /// it twice.
    mapping(bytes32 memberId => address grid) public parentGrid;

    event MeterRegistered(
        bytes32 indexed meterId,
        address key,
        uint8 kind,
        bytes32 indexed groupId,
        uint64 activeFrom,
        uint64 activeUntil,
        uint64 baselineImportMwh,
        uint64 baselineExportMwh
    );
    event QuorumSet(uint8 quorum, uint256 operatorCount);
    /// @notice The operator set and quorum in force from now on, as epoch `epoch`.
    event OperatorEpochStarted(uint32 indexed epoch, address[] operators, uint8 quorum);
    /// @notice The meter point is settled up to `lastPeriod` inclusive, and never after.
    event MeterDecommissioned(bytes32 indexed meterId, uint64 lastPeriod);
    /// @notice The metering point `pointId` (the settlement identity a household keeps) is served
    /// by `newMeterId` from `period` on; `oldMeterId`'s last period is `period`: both settle in it
    /// (the old up to its final reading, the new from its baseline), so no energy is lost or counted twice.
    event MeterExchanged(bytes32 indexed pointId, bytes32 indexed oldMeterId, bytes32 indexed newMeterId, uint64 period);
    /// @notice Readings of `fromPeriod` and later are signed by `key`; by the old key, they are
    /// fraud. `replacesPending`: it takes the place of the meter's last rotation, which had not
    /// taken effect yet (at most one rotation waits at a time).
    event MeterKeyRotated(bytes32 indexed meterId, address key, uint64 fromPeriod, bool replacesPending);

    /// @dev `row` is the meter's index in the registerMeters call (0 for registerMeter): one bad
    /// row reverts the whole call and names itself.
    error MeterAlreadyRegistered(uint256 row, bytes32 meterId);
    error InvalidMeter(uint256 row, bytes32 meterId, string field);
    error LengthMismatch(uint256 meterIds, uint256 meters);
    error UnknownMeter(bytes32 meterId);
    /// @notice A change would reach back to `period`, which has ended (its batch may exist).
    error Retroactive(uint64 period, uint64 currentPeriod);
    /// @notice Decommissioning only ends an active window earlier; `lastPeriod` must lie in it.
    error NotShortening(bytes32 meterId, uint64 lastPeriod, uint64 activeFrom, uint64 activeUntil);
    error InvalidQuorum(uint256 quorum, uint256 operatorCount);
    error QuorumUnreachable(uint256 quorum, uint256 operatorCountAfter);
    error NotAnOperator(address account);
    error AlreadyAnOperator(address account);

    /// @notice Records the calling grid as `memberId`'s parent (Grid.addGroup, Grid.addGrid).
    /// Grids only (GRID_ROLE); reverts MemberOfAnotherGrid if it has one.
    function claimParent(bytes32 memberId) external onlyRole(GRID) {
        address parent = parentGrid[memberId];
        if (parent != address(0)) revert MemberOfAnotherGrid(memberId, parent);
        parentGrid[memberId] = msg.sender;
    }

    /// @notice The calling grid stops being `memberId`'s parent (Grid.removeMember: it no longer
    /// counts the member from its next period on, the earliest another grid can count it from).
    function releaseParent(bytes32 memberId) external {
        if (parentGrid[memberId] != msg.sender) revert MemberOfAnotherGrid(memberId, parentGrid[memberId]);
        delete parentGrid[memberId];
    }

    /// @param adminTransferDelay seconds between beginDefaultAdminTransfer and the earliest
    /// acceptDefaultAdminTransfer
    /// @param periodSeconds_ the settlement period, as the ledger's
    constructor(address admin, uint48 adminTransferDelay, uint64 periodSeconds_)
        AccessControlDefaultAdminRules(adminTransferDelay, admin)
    {
        if (periodSeconds_ == 0) revert InvalidMeter(0, bytes32(0), "periodSeconds");
        periodSeconds = periodSeconds_;
    }

    /// @notice The period the chain is in now: changes to meter points take effect from it at
    /// the earliest.
    function currentPeriod() public view returns (uint64) {
        return uint64(block.timestamp / periodSeconds);
    }

    /// @notice Ends a meter point's active window after `lastPeriod` (the meter is removed, the
    /// connection closed). Never retroactive: `lastPeriod` may not have ended (>= currentPeriod()),
    /// so every batch submitted so far keeps its meaning; it only shortens the window, and may
    /// end it before it began (lastPeriod = activeFrom - 1: never settled).
    function decommission(bytes32 meterId, uint64 lastPeriod) external onlyRole(METER_OPERATOR_ROLE) {
        _decommission(meterId, lastPeriod);
    }

    /// @notice Exchanges the meter of a metering point: `oldMeterId` settles up to and including
    /// `period` (its final reading closes its register chain), `newMeterId` (same kind and group,
    /// its own key and baseline registers: a new meter usually starts at zero) from `period` on,
    /// serving the same point (meteringPoint). Never retroactive (`period >= currentPeriod()`);
    /// the old meter must be active in `period`. The oracle reads both in the exchange period.
    function exchangeMeter(bytes32 oldMeterId, bytes32 newMeterId, address newKey, uint64 period, uint64 baselineImportMwh,
        uint64 baselineExportMwh) external onlyRole(METER_OPERATOR_ROLE) {
        Record storage old = _meters[oldMeterId];
        if (old.key != address(0) && period < old.activeFrom) {
            revert NotShortening(oldMeterId, period, old.activeFrom, old.activeUntil);
        }
        uint64 until = old.activeUntil;
        _decommission(oldMeterId, period); // also the guard against exchanging one meter twice
        _register(0, newMeterId, Meter(newKey, old.kind, old.groupId, period, until, baselineImportMwh, baselineExportMwh));
        bytes32 point = meteringPoint(oldMeterId);
        _pointOf[newMeterId] = point;
        emit MeterExchanged(point, oldMeterId, newMeterId, period);
    }

    /// @notice The metering point a meter serves: itself, or the point it was exchanged into.
    function meteringPoint(bytes32 meterId) public view returns (bytes32) {
        bytes32 point = _pointOf[meterId];
        return point == bytes32(0) ? meterId : point;
    }

    function _decommission(bytes32 meterId, uint64 lastPeriod) private {
        Record storage r = _meters[meterId];
        if (r.key == address(0)) revert UnknownMeter(meterId);
        uint64 nowPeriod = currentPeriod();
        if (lastPeriod < nowPeriod) revert Retroactive(lastPeriod, nowPeriod);
        if (lastPeriod >= r.activeUntil || lastPeriod + 1 < r.activeFrom) {
            revert NotShortening(meterId, lastPeriod, r.activeFrom, r.activeUntil);
        }
        r.activeUntil = lastPeriod;
        emit MeterDecommissioned(meterId, lastPeriod);
    }

    /// @notice Registers a meter point bound to the key that signs its readings.
    /// @param activeFrom first period the meter may be settled in (>= 1; its first leaf counts
    /// from the baseline with prevPeriod = activeFrom - 1)
    /// @param activeUntil last period it may be settled in (inclusive; type(uint64).max: open)
    function registerMeter(
        bytes32 meterId,
        address key,
        uint8 kind,
        bytes32 groupId,
        uint64 activeFrom,
        uint64 activeUntil,
        uint64 baselineImportMwh,
        uint64 baselineExportMwh
    ) external onlyRole(METER_OPERATOR_ROLE) {
        _register(
            0, meterId, Meter(key, kind, groupId, activeFrom, activeUntil, baselineImportMwh, baselineExportMwh)
        );
    }

    /// @notice Registers many meter points in one transaction, all or none: the first bad row
    /// reverts the call with its index (InvalidMeter, MeterAlreadyRegistered).
    function registerMeters(bytes32[] calldata meterIds, Meter[] calldata meters)
        external
        onlyRole(METER_OPERATOR_ROLE)
    {
        if (meterIds.length != meters.length) revert LengthMismatch(meterIds.length, meters.length);
        for (uint256 i; i < meterIds.length; ++i) {
            _register(i, meterIds[i], meters[i]);
        }
    }

    function _register(uint256 row, bytes32 meterId, Meter memory m) private {
        if (meterId == bytes32(0)) revert InvalidMeter(row, meterId, "meterId");
        if (_meters[meterId].key != address(0)) revert MeterAlreadyRegistered(row, meterId);
        if (m.key == address(0)) revert InvalidMeter(row, meterId, "key");
        if (m.kind > KIND_BOUNDARY) revert InvalidMeter(row, meterId, "kind");
        if (m.groupId == bytes32(0)) revert InvalidMeter(row, meterId, "groupId");
        if (m.activeFrom == 0 || m.activeUntil < m.activeFrom) revert InvalidMeter(row, meterId, "activeWindow");
        _meters[meterId] = Record(
            m.key,
            m.kind,
            uint64(block.timestamp),
            m.groupId,
            m.activeFrom,
            m.activeUntil,
            m.baselineImportMwh,
            m.baselineExportMwh
        );
        emit MeterRegistered(
            meterId, m.key, m.kind, m.groupId, m.activeFrom, m.activeUntil, m.baselineImportMwh, m.baselineExportMwh
        );
    }

    /// @notice Replaces the meter's signing key (a gateway's key compromised or its gateway
    /// exchanged) from `fromPeriod` on. Never retroactive: `fromPeriod` lies after the current
    /// period (readings of the current one may be signed already, and batches of earlier ones
    /// submitted), so every reading keeps the key it was signed under. A rotation that has not
    /// taken effect yet is replaced by the next one (a mistyped key or period can be mended), so
    /// at most one waits and the changes grow by at most one a period: no one can stack entries
    /// that keyAt, and so proveBadSignature, would have to wade through.
    function rotateKey(bytes32 meterId, address newKey, uint64 fromPeriod) external onlyRole(METER_OPERATOR_ROLE) {
        if (_meters[meterId].key == address(0)) revert UnknownMeter(meterId);
        if (newKey == address(0)) revert InvalidMeter(0, meterId, "key");
        uint64 nowPeriod = currentPeriod();
        if (fromPeriod <= nowPeriod) revert Retroactive(fromPeriod, nowPeriod);
        KeyChange[] storage changes = _keyChanges[meterId];
        uint256 n = changes.length;
        bool pending = n > 0 && changes[n - 1].fromPeriod > nowPeriod;
        if (pending) changes[n - 1] = KeyChange(newKey, fromPeriod);
        else changes.push(KeyChange(newKey, fromPeriod)); // after every change in effect (<= nowPeriod)
        emit MeterKeyRotated(meterId, newKey, fromPeriod, pending);
    }

    /// @notice The key that signs the meter's readings of `period` (zero if not registered):
    /// the latest change from `period` or before (binary search: the changes ascend), else the
    /// registered key.
    function keyAt(bytes32 meterId, uint64 period) public view returns (address) {
        KeyChange[] storage changes = _keyChanges[meterId];
        uint256 lo = 0;
        uint256 hi = changes.length; // the first change after `period` lies in [lo, hi]
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (changes[mid].fromPeriod <= period) lo = mid + 1;
            else hi = mid;
        }
        return lo == 0 ? _meters[meterId].key : changes[lo - 1].key;
    }

    /// @notice The meter point (all zero if not registered); `key` is the registered key, the
    /// one before any rotation (keyAt gives a period's).
    function getMeter(bytes32 meterId) public view returns (Meter memory) {
        Record storage r = _meters[meterId];
        return Meter(r.key, r.kind, r.groupId, r.activeFrom, r.activeUntil, r.baselineImportMwh, r.baselineExportMwh);
    }

    /// @notice Many meter points at once (a `register` run reads what is registered already).
    function getMeters(bytes32[] calldata meterIds) external view returns (Meter[] memory out) {
        out = new Meter[](meterIds.length);
        for (uint256 i; i < meterIds.length; ++i) {
            out[i] = getMeter(meterIds[i]);
        }
    }

    /// @notice Block timestamp of each meter's registration (0: not registered): a meter counts
    /// in a batch only if registered strictly before the batch's submission (an earlier timestamp).
    function registeredAt(bytes32 meterId) external view returns (uint64) {
        return _meters[meterId].registeredAt;
    }

    /// @notice Adds a settlement operator (grants SETTLEMENT_OPERATOR_ROLE): a new epoch.
    function addOperator(address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _grantRole(SETTLEMENT_OPERATOR_ROLE, account);
    }

    /// @notice Removes a settlement operator; reverts if fewer than `quorum` would remain. A new epoch.
    function removeOperator(address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _revokeRole(SETTLEMENT_OPERATOR_ROLE, account);
    }

    /// @notice Sets the quorum k (1 <= k <= number of operators): a new epoch.
    function setQuorum(uint8 k) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setQuorum(k);
        _startEpoch();
    }

    /// @notice Changes the operator set and quorum in one step, as one new epoch (operators
    /// leaving and joining never pass through a set in between that could sign alone).
    /// @param joining accounts that become operators (each must not be one already)
    /// @param leaving operators that leave (each must be one)
    /// @param k the quorum of the new set
    function changeOperators(address[] calldata joining, address[] calldata leaving, uint8 k)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        for (uint256 i; i < leaving.length; ++i) {
            if (!super._revokeRole(SETTLEMENT_OPERATOR_ROLE, leaving[i])) revert NotAnOperator(leaving[i]);
        }
        for (uint256 i; i < joining.length; ++i) {
            if (joining[i] == address(0) || !super._grantRole(SETTLEMENT_OPERATOR_ROLE, joining[i])) {
                revert AlreadyAnOperator(joining[i]);
            }
        }
        _setQuorum(k);
        _startEpoch();
    }

    /// @notice The operator epoch in force and its quorum (what the ledger checks a header against).
    function epochQuorum() external view returns (uint32 epoch, uint8 k) {
        return (operatorEpoch, quorum);
    }

    /// @notice The operator set in force, its quorum and its epoch, read at one block.
    function operatorSet() external view returns (uint32 epoch, address[] memory members, uint8 k) {
        return (operatorEpoch, getRoleMembers(SETTLEMENT_OPERATOR_ROLE), quorum);
    }

    function _setQuorum(uint8 k) private {
        uint256 n = getRoleMemberCount(SETTLEMENT_OPERATOR_ROLE);
        if (k == 0 || k > n) revert InvalidQuorum(k, n);
        quorum = k;
        emit QuorumSet(k, n);
    }

    function _startEpoch() private {
        uint32 e = ++operatorEpoch;
        emit OperatorEpochStarted(e, getRoleMembers(SETTLEMENT_OPERATOR_ROLE), quorum);
    }

    /// @notice The settlement operator set.
    function operators() external view returns (address[] memory) {
        return getRoleMembers(SETTLEMENT_OPERATOR_ROLE);
    }

    /// @notice Whether `account` is a settlement operator.
    function isOperator(address account) external view returns (bool) {
        return hasRole(SETTLEMENT_OPERATOR_ROLE, account);
    }

    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(AccessControlDefaultAdminRules, AccessControlEnumerable)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }

    function grantRole(bytes32 role, address account)
        public
        override(AccessControlDefaultAdminRules, AccessControl, IAccessControl)
    {
        super.grantRole(role, account);
    }

    function revokeRole(bytes32 role, address account)
        public
        override(AccessControlDefaultAdminRules, AccessControl, IAccessControl)
    {
        super.revokeRole(role, account);
    }

    function renounceRole(bytes32 role, address account)
        public
        override(AccessControlDefaultAdminRules, AccessControl, IAccessControl)
    {
        super.renounceRole(role, account);
    }

    function _setRoleAdmin(bytes32 role, bytes32 adminRole)
        internal
        override(AccessControlDefaultAdminRules, AccessControl)
    {
        super._setRoleAdmin(role, adminRole);
    }

    function _grantRole(bytes32 role, address account)
        internal
        override(AccessControlDefaultAdminRules, AccessControlEnumerable)
        returns (bool granted)
    {
        granted = super._grantRole(role, account);
        if (granted && role == SETTLEMENT_OPERATOR_ROLE) _startEpoch();
    }

    /// @dev Every way out of the operator set (removeOperator, revokeRole, renounceRole) keeps
    /// the quorum reachable and starts a new epoch.
    function _revokeRole(bytes32 role, address account)
        internal
        override(AccessControlDefaultAdminRules, AccessControlEnumerable)
        returns (bool revoked)
    {
        revoked = super._revokeRole(role, account);
        if (revoked && role == SETTLEMENT_OPERATOR_ROLE) {
            uint256 n = getRoleMemberCount(SETTLEMENT_OPERATOR_ROLE);
            if (n < quorum) revert QuorumUnreachable(quorum, n);
            _startEpoch();
        }
    }
}
