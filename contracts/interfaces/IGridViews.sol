// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Batch} from "../lib/SettlementTypes.sol";

/// @notice What a Grid reads from the period ledger.
interface ILedgerBatches {
    function getBatch(uint64 period, bytes32 groupId) external view returns (Batch memory);
    function periodSeconds() external view returns (uint64);
    function lastFinalPeriod(bytes32 groupId) external view returns (uint64);
}

/// @notice What a containing grid reads from a member grid: only its boundary exchange.
interface IGridExchange {
    function gridId() external view returns (bytes32);
    function boundaryGroup() external view returns (bytes32);
    /// @return rolledUp whether the period is rolled up
    /// @return toUpstream energy the grid exported to its upstream (mWh)
    /// @return fromUpstream energy the grid drew from its upstream (mWh)
    function exchange(uint64 period) external view returns (bool rolledUp, uint64 toUpstream, uint64 fromUpstream);
}
