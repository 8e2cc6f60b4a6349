// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {FraudProofs} from "./ledger/FraudProofs.sol";
import {BatchBook} from "./ledger/BatchBook.sol";

/// @title PeriodLedger
/// @notice The period ledger: batches per period and balance group (BatchBook) with the fraud
/// proofs that reject them (FraudProofs). Also the EIP-712 verifying contract of readings and
/// batch headers.
contract PeriodLedger is FraudProofs {
    /// @param registry the MeterRegistry (meters, roles, operator set, quorum)
    /// @param periodSeconds length of a settlement period (900)
    /// @param challengeWindowSeconds how long after submission fraud proofs are accepted
    constructor(address registry, uint64 periodSeconds, uint64 challengeWindowSeconds)
        BatchBook(registry, periodSeconds, challengeWindowSeconds)
    {}
}
