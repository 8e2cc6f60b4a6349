// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title ProRata
/// @notice Integer pro-rata allocation that never allocates a unit twice: floors first, then
/// the remainder one unit at a time in list order; and the split of an amount across consumers
/// and producers at once (origin matrix) with exact row and column totals.
library ProRata {
    /// @notice Splits `amount` over `weights` in proportion (amount <= sum of weights): each
    /// share is the floor of its exact part, the remainder goes one unit each to the first
    /// entries that still have room (share < weight). Shares sum to exactly `amount`.
    function split(uint256 amount, uint256[] memory weights) internal pure returns (uint256[] memory shares) {
        uint256 n = weights.length;
        shares = new uint256[](n);
        uint256 total;
        for (uint256 i; i < n; ++i) total += weights[i];
        if (amount == 0 || total == 0) return shares;
        uint256 given;
        for (uint256 i; i < n; ++i) {
            shares[i] = amount * weights[i] / total;
            given += shares[i];
        }
        for (uint256 i; given < amount && i < n; ++i) {
            if (shares[i] < weights[i]) {
                ++shares[i];
                ++given;
            }
        }
    }

    /// @notice The matrix a[i][j] (consumer i, producer j) with row sums `rows` and column sums
    /// `cols` (both summing to `amount`), each cell the floor of rows[i] * cols[j] / amount,
    /// the residuals filled north-west-corner first.
    function matrix(uint256 amount, uint256[] memory rows, uint256[] memory cols)
        internal
        pure
        returns (uint256[][] memory a)
    {
        uint256 n = rows.length;
        uint256 m = cols.length;
        a = new uint256[][](n);
        uint256[] memory rowLeft = new uint256[](n);
        uint256[] memory colLeft = new uint256[](m);
        for (uint256 j; j < m; ++j) colLeft[j] = cols[j];
        for (uint256 i; i < n; ++i) {
            a[i] = new uint256[](m);
            rowLeft[i] = rows[i];
            if (amount == 0) continue;
            for (uint256 j; j < m; ++j) {
                uint256 cell = rows[i] * cols[j] / amount;
                a[i][j] = cell;
                rowLeft[i] -= cell;
                colLeft[j] -= cell;
            }
        }
        uint256 r;
        uint256 c;
        while (r < n && c < m) {
            uint256 take = rowLeft[r] < colLeft[c] ? rowLeft[r] : colLeft[c];
            a[r][c] += take;
            rowLeft[r] -= take;
            colLeft[c] -= take;
            if (rowLeft[r] == 0) ++r;
            else ++c;
        }
    }
}
