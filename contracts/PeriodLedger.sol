// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {FraudProofs} from "./ledger/FraudProofs.sol";
import {DataAvailability} from "./ledger/DataAvailability.sol";
import {BatchBook} from "./ledger/BatchBook.sol";

/// @title PeriodLedger
/// @notice The period ledger: batches per period and balance group (BatchBook) with the fraud
/// proofs that reject them (FraudProofs) and the data availability challenges that make their
/// leaves public when anyone doubts them (DataAvailability). Also the EIP-712 verifying contract
/// of readings and batch headers.
contract PeriodLedger is FraudProofs, DataAvailability {
    /// @param registry the MeterRegistry (meters, roles, operator set, quorum)
    /// @param periodSeconds length of a settlement period (900)
    /// @param challengeWindowSeconds how long after submission fraud proofs are accepted
    /// @param responseSeconds how long a challenged batch's leaves have to be revealed in
    constructor(address registry, uint64 periodSeconds, uint64 challengeWindowSeconds, uint64 responseSeconds)
        BatchBook(registry, periodSeconds, challengeWindowSeconds, responseSeconds)
    {}
}
