// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {
    IMeterRegistry,
    AccessControlUnauthorizedAccount,
    MemberOfAnotherGrid,
    SETTLEMENT_OPERATOR
} from "./interfaces/IMeterRegistry.sol";
import {ILedgerBatches, IGridExchange} from "./interfaces/IGridViews.sol";
import {Batch, STATUS_FINAL} from "./lib/SettlementTypes.sol";
import {ProRata} from "./grid/ProRata.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

/// @title Grid
/// @notice One level of the coinless cascade. Its members are balance groups (settled by the
/// PeriodLedger) and member grids (seen only through their boundary exchange). Per period it
/// records what each member injected (export deltas) and withdrew (import deltas), checks
/// conservation against its boundary group
/// (injected + fromUpstream = withdrawn + toUpstream + losses + imbalance), books what does not
/// balance as imbalance of the responsible group, and allocates local generation pro rata to
/// local consumption, recording the origin of each consumer member's local energy.
/// A member group whose chain finalized past a period without a batch in it counts zero there.
/// @dev losses = min(surplus, (injected + fromUpstream) * lossBps / 10000) for a surplus, 0 for
/// a deficit; imbalance (signed) is the rest, so nothing is ever dropped.
contract Grid is IGridExchange {
    using Checkpoints for Checkpoints.Trace160;

    uint256 public constant MAX_MEMBERS = 16;
    uint16 public constant BPS = 10_000;

    struct Member {
        bytes32 id; // the groupId, or the member grid's gridId
        address grid; // zero for a balance group
    }

    /// @notice A member's energy in one period (mWh).
    struct Flow {
        uint64 injected;
        uint64 withdrawn;
        uint64 localReceived; // of its withdrawal, covered by local generation
        uint64 localSupplied; // of its injection, used by local consumption
    }

    struct Rollup {
        uint64 injected;
        uint64 withdrawn;
        uint64 fromUpstream;
        uint64 toUpstream;
        uint64 losses;
        uint64 localAllocated;
        int96 imbalance;
        bool rolledUp;
    }

    IMeterRegistry public immutable registry;
    ILedgerBatches public immutable ledger;
    bytes32 public immutable gridId;
    /// @notice The group holding this grid's boundary meters (zero: no upstream connection).
    bytes32 public immutable boundaryGroup;
    /// @notice The group whose imbalance account carries what does not balance.
    bytes32 public immutable responsibleGroup;
    /// @dev Allowed technical losses (basis points of the energy entering the grid) by the first
    /// period they apply to: a change applies only from the period after the current one, so
    /// no period that can be rolled up (closed) sees it.
    Checkpoints.Trace160 private _lossBps;

    Member[] private _members;
    mapping(bytes32 id => bool) public isMember;
    /// @notice The first period a removed member no longer counts in (0: not removed).
    mapping(bytes32 id => uint64) public removedFrom;
    /// @notice The first period a member counts in: the period after the one it was added in,
    /// so no closed period (rolled up or not) changes meaning.
    mapping(bytes32 id => uint64) public addedFrom;
    mapping(uint64 period => Rollup) private _rollups;
    mapping(uint64 period => mapping(bytes32 memberId => Flow)) private _flows;
    mapping(uint64 period => mapping(bytes32 consumer => mapping(bytes32 producer => uint64))) private _origin;

    event MemberAdded(bytes32 indexed memberId, address grid, uint64 fromPeriod);
    event MemberRemoved(bytes32 indexed memberId, uint64 fromPeriod);
    event LossBpsSet(uint16 lossBps, uint64 fromPeriod);
    event MemberFlowRecorded(uint64 indexed period, bytes32 indexed memberId, uint64 injected, uint64 withdrawn);
    event Allocated(uint64 indexed period, bytes32 indexed consumer, bytes32 indexed producer, uint64 mwh);
    event ImbalanceRecorded(uint64 indexed period, bytes32 indexed responsibleGroup, int96 imbalance);
    event PeriodRolledUp(
        uint64 indexed period,
        uint64 injected,
        uint64 withdrawn,
        uint64 fromUpstream,
        uint64 toUpstream,
        uint64 losses,
        int96 imbalance,
        uint64 localAllocated
    );

    error InvalidConfig(string what);
    error InvalidMember(bytes32 memberId, string why);
    error TooManyMembers();
    error NoMembers();
    error AlreadyRolledUp(uint64 period);
    error MemberNotFinal(uint64 period, bytes32 memberId);
    error SumOverflow();

    /// @param registry_ the MeterRegistry (roles)
    /// @param ledger_ the PeriodLedger whose final batches are the member groups' figures
    /// @param gridId_ this grid's id as a member of a containing grid (keccak256 of its name)
    /// @param boundaryGroup_ the group of the boundary meters (zero: none)
    /// @param responsibleGroup_ who carries the imbalance
    /// @param lossBps_ allowed losses in basis points (<= 10000)
    constructor(
        address registry_,
        address ledger_,
        bytes32 gridId_,
        bytes32 boundaryGroup_,
        bytes32 responsibleGroup_,
        uint16 lossBps_
    ) {
        if (registry_ == address(0) || ledger_ == address(0)) revert InvalidConfig("address");
        if (gridId_ == bytes32(0) || responsibleGroup_ == bytes32(0)) revert InvalidConfig("id");
        if (lossBps_ > BPS) revert InvalidConfig("lossBps");
        registry = IMeterRegistry(registry_);
        ledger = ILedgerBatches(ledger_);
        gridId = gridId_;
        boundaryGroup = boundaryGroup_;
        responsibleGroup = responsibleGroup_;
        _lossBps.push(0, lossBps_);
    }

    modifier onlyRole(bytes32 role) {
        if (!registry.hasRole(role, msg.sender)) revert AccessControlUnauthorizedAccount(msg.sender, role);
        _;
    }

    /// @notice Adds a balance group (settled by the ledger) as a member from the period after
    /// the current one on (like removeMember and setLossBps: closed periods keep their members).
    /// It must belong to no other grid (the registry's shared index, `MemberOfAnotherGrid`);
    /// this grid needs the registry's GRID_ROLE. Admin only.
    function addGroup(bytes32 groupId) external onlyRole(0x00) {
        if (groupId == bytes32(0) || groupId == boundaryGroup) revert InvalidMember(groupId, "group");
        _add(Member(groupId, address(0)));
    }

    /// @notice Adds a grid as a member from the period after the current one on; this grid sees
    /// only its boundary exchange. It must belong to no other grid (`MemberOfAnotherGrid`).
    /// Admin only.
    function addGrid(address grid) external onlyRole(0x00) {
        if (grid == address(this) || grid.code.length == 0) revert InvalidMember(bytes32(0), "grid");
        IGridExchange child = IGridExchange(grid);
        bytes32 id = child.gridId();
        if (child.boundaryGroup() == bytes32(0)) revert InvalidMember(id, "grid without boundary");
        if (_contains(grid)) revert InvalidMember(id, "cycle");
        _add(Member(id, grid));
    }

    /// @notice Removes a member from the period after the current one on (closed periods, rolled
    /// up or not, keep it). Its place is kept (it counts toward MAX_MEMBERS). Admin only.
    function removeMember(bytes32 id) external onlyRole(0x00) {
        if (!isMember[id] || removedFrom[id] != 0) revert InvalidMember(id, "not a member");
        uint64 from = _nextPeriod();
        removedFrom[id] = from;
        registry.releaseParent(id); // another grid may count it, from its next period on at the earliest
        emit MemberRemoved(id, from);
    }

    /// @notice Sets the allowed losses in basis points (<= 10000) from the period after the
    /// current one on (periods already closed or running keep theirs). Admin only.
    function setLossBps(uint16 bps) external onlyRole(0x00) {
        if (bps > BPS) revert InvalidConfig("lossBps");
        uint64 from = _nextPeriod();
        _lossBps.push(from, bps);
        emit LossBpsSet(bps, from);
    }

    /// @notice The latest loss allowance set (it may apply only from a future period).
    function lossBps() external view returns (uint16) {
        return uint16(_lossBps.latest());
    }

    /// @notice The loss allowance that applies to `period`.
    function lossBpsAt(uint64 period) public view returns (uint16) {
        return uint16(_lossBps.upperLookupRecent(period));
    }

    /// @notice Rolls up a period once every member group's batch (and the boundary group's) is
    /// final and every member grid has rolled it up. Settlement operators only; once per period.
    function rollUp(uint64 period) external onlyRole(SETTLEMENT_OPERATOR) {
        Rollup storage r = _rollups[period];
        if (r.rolledUp) revert AlreadyRolledUp(period);
        uint256 n = _members.length;
        if (n == 0) revert NoMembers();
        uint256[] memory injected = new uint256[](n);
        uint256[] memory withdrawn = new uint256[](n);
        uint256 totalIn;
        uint256 totalOut;
        for (uint256 i; i < n; ++i) {
            uint64 gone = removedFrom[_members[i].id];
            if (gone != 0 && period >= gone) continue; // removed: no flow, no share
            if (period < addedFrom[_members[i].id]) continue; // not a member yet in that period
            (injected[i], withdrawn[i]) = _memberFlow(period, _members[i]);
            totalIn += injected[i];
            totalOut += withdrawn[i];
            emit MemberFlowRecorded(period, _members[i].id, uint64(injected[i]), uint64(withdrawn[i]));
        }
        (uint256 fromUp, uint256 toUp) = boundaryGroup == bytes32(0) ? (0, 0) : _finalTotals(period, boundaryGroup);
        if (totalIn > type(uint64).max || totalOut > type(uint64).max) revert SumOverflow();

        (uint256 losses, int256 imbalance) = _balance(totalIn + fromUp, totalOut + toUp, lossBpsAt(period));
        uint256 local = totalIn < totalOut ? totalIn : totalOut;
        _allocate(period, local, injected, withdrawn);

        _rollups[period] = Rollup(
            uint64(totalIn),
            uint64(totalOut),
            uint64(fromUp),
            uint64(toUp),
            uint64(losses),
            uint64(local),
            int96(imbalance),
            true
        );
        emit ImbalanceRecorded(period, responsibleGroup, int96(imbalance));
        emit PeriodRolledUp(
            period, uint64(totalIn), uint64(totalOut), uint64(fromUp), uint64(toUp), uint64(losses), int96(imbalance),
            uint64(local)
        );
    }

    /// @inheritdoc IGridExchange
    function exchange(uint64 period) external view returns (bool rolledUp, uint64 toUpstream, uint64 fromUpstream) {
        Rollup storage r = _rollups[period];
        return (r.rolledUp, r.toUpstream, r.fromUpstream);
    }

    /// @notice The period's totals, losses, imbalance and locally allocated energy.
    function getRollup(uint64 period) external view returns (Rollup memory) {
        return _rollups[period];
    }

    /// @notice A member's injected, withdrawn, locally received and locally supplied energy.
    function memberFlow(uint64 period, bytes32 memberId) external view returns (Flow memory) {
        return _flows[period][memberId];
    }

    /// @notice How much of `consumer`'s withdrawal in `period` came from `producer`'s injection.
    function origin(uint64 period, bytes32 consumer, bytes32 producer) external view returns (uint64) {
        return _origin[period][consumer][producer];
    }

    /// @notice The members in the order they were added (the allocation's remainder order).
    function members() external view returns (Member[] memory) {
        return _members;
    }

    /// @dev The period after the current one: the first a configuration change may apply to.
    function _nextPeriod() private view returns (uint64) {
        return uint64(block.timestamp / ledger.periodSeconds()) + 1;
    }

    /// @dev Whether `grid` is this grid or contains it, directly or through its member grids
    /// (adding it would close a membership cycle).
    function _contains(address grid) private view returns (bool) {
        if (grid == address(this)) return true;
        Member[] memory ms = Grid(grid).members();
        for (uint256 i; i < ms.length; ++i) {
            if (ms[i].grid != address(0) && _contains(ms[i].grid)) return true;
        }
        return false;
    }

    function _add(Member memory m) private {
        if (isMember[m.id]) revert InvalidMember(m.id, "duplicate");
        if (_members.length >= MAX_MEMBERS) revert TooManyMembers();
        address parent = registry.parentGrid(m.id);
        if (parent != address(0)) revert MemberOfAnotherGrid(m.id, parent);
        registry.claimParent(m.id);
        isMember[m.id] = true;
        uint64 from = _nextPeriod();
        addedFrom[m.id] = from;
        _members.push(m);
        emit MemberAdded(m.id, m.grid, from);
    }

    /// @dev (injected, withdrawn) of a member: a group's final export/import totals, or a member
    /// grid's export to / draw from its upstream (this grid).
    function _memberFlow(uint64 period, Member memory m) private view returns (uint256, uint256) {
        if (m.grid == address(0)) {
            (uint256 imp, uint256 exp) = _finalTotals(period, m.id);
            return (exp, imp);
        }
        (bool done, uint64 toUp, uint64 fromUp) = IGridExchange(m.grid).exchange(period);
        if (!done) revert MemberNotFinal(period, m.id);
        return (toUp, fromUp);
    }

    function _finalTotals(uint64 period, bytes32 groupId) private view returns (uint256 imp, uint256 exp) {
        Batch memory b = ledger.getBatch(period, groupId);
        if (b.status == STATUS_FINAL) return (b.totalImportMwh, b.totalExportMwh);
        // the group's chain finalized past the period without a batch in it: it settled nothing
        // there (its meters' energy counts in its next batch), so the period is zero for it
        if (ledger.lastFinalPeriod(groupId) > period) return (0, 0);
        revert MemberNotFinal(period, groupId);
    }

    function _balance(uint256 entering, uint256 leaving, uint256 bps)
        private
        pure
        returns (uint256 losses, int256 imbalance)
    {
        if (entering > leaving) {
            uint256 allowed = entering * bps / BPS;
            uint256 surplus = entering - leaving;
            losses = surplus < allowed ? surplus : allowed;
            imbalance = int256(surplus - losses);
        } else {
            imbalance = -int256(leaving - entering);
        }
    }

    /// @dev Pro rata: local = min(injected, withdrawn) is split over consumers by withdrawal and
    /// over producers by injection, then into an origin matrix with those exact totals.
    function _allocate(uint64 period, uint256 local, uint256[] memory injected, uint256[] memory withdrawn)
        private
    {
        uint256[] memory received = ProRata.split(local, withdrawn);
        uint256[] memory supplied = ProRata.split(local, injected);
        uint256[][] memory a = ProRata.matrix(local, received, supplied);
        uint256 n = injected.length;
        for (uint256 i; i < n; ++i) {
            bytes32 consumer = _members[i].id;
            _flows[period][consumer] =
                Flow(uint64(injected[i]), uint64(withdrawn[i]), uint64(received[i]), uint64(supplied[i]));
            for (uint256 j; j < n; ++j) {
                if (a[i][j] == 0) continue;
                bytes32 producer = _members[j].id;
                _origin[period][consumer][producer] = uint64(a[i][j]);
                emit Allocated(period, consumer, producer, uint64(a[i][j]));
            }
        }
    }
}
