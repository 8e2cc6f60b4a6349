// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Leaf, SumNode} from "./SettlementTypes.sol";

/// @title MerkleSum
/// @notice Positional Merkle-sum tree of the shared encoding: leaf hash, parent node, depth and
/// root recomputation from a sibling path (bit i of the index set: sibling i is on the left).
library MerkleSum {
    /// @notice A parent's import or export sum exceeds uint64.
    error SumOverflow();
    /// @notice The proof is longer or shorter than the tree's depth, or the index lies outside it.
    error BadProofShape(uint256 index, uint256 proofLength, uint256 expectedLength);

    /// @notice keccak256(bytes.concat(keccak256(abi.encode(leaf)))): hashed twice so that a
    /// leaf can never pass as an inner node.
    function leafHash(Leaf calldata leaf) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(leaf))));
    }

    /// @notice Hash of an inner node over its two children (hashes and sums).
    function parentHash(SumNode memory left, SumNode memory right) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(left.hash, left.importMwh, left.exportMwh, right.hash, right.importMwh, right.exportMwh)
        );
    }

    /// @notice The parent node of two children, with checked uint64 sums.
    function parent(SumNode memory left, SumNode memory right) internal pure returns (SumNode memory) {
        uint256 imp = uint256(left.importMwh) + right.importMwh;
        uint256 exp = uint256(left.exportMwh) + right.exportMwh;
        if (imp > type(uint64).max || exp > type(uint64).max) revert SumOverflow();
        return SumNode(parentHash(left, right), uint64(imp), uint64(exp));
    }

    /// @notice ceil(log2(count)); 0 for one leaf.
    function depth(uint256 count) internal pure returns (uint256 d) {
        while ((uint256(1) << d) < count) ++d;
    }

    /// @notice Recomputes the root from `node` at position `index` of its level and the sibling
    /// path up from that level; reverts unless the path has `expectedLength` siblings and the
    /// index fits the level.
    function computeRoot(SumNode memory node, uint256 index, SumNode[] calldata siblings, uint256 expectedLength)
        internal
        pure
        returns (SumNode memory)
    {
        if (siblings.length != expectedLength || (index >> expectedLength) != 0) {
            revert BadProofShape(index, siblings.length, expectedLength);
        }
        for (uint256 k; k < siblings.length; ++k) {
            SumNode memory sibling = siblings[k];
            node = (index >> k) & 1 == 1 ? parent(sibling, node) : parent(node, sibling);
        }
        return node;
    }
}
