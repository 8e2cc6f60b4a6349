// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Leaf, SumNode} from "./SettlementTypes.sol";

/// @title MerkleSum
/// @notice Positional Merkle-sum tree of the shared encoding: leaf hash, parent node, depth and
/// root recomputation from a sibling path (bit i of the index set: sibling i is on the left).
library MerkleSum {
    /// @notice An import or export sum on a proof path exceeds uint64.
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
        return hashPair(left.hash, left.importMwh, left.exportMwh, right.hash, right.importMwh, right.exportMwh);
    }

    /// @notice keccak256(abi.encode(lh, li, le, rh, ri, re)) hashed in scratch memory.
    function hashPair(bytes32 lh, uint256 li, uint256 le, bytes32 rh, uint256 ri, uint256 re)
        internal
        pure
        returns (bytes32 h)
    {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, lh)
            mstore(add(p, 0x20), li)
            mstore(add(p, 0x40), le)
            mstore(add(p, 0x60), rh)
            mstore(add(p, 0x80), ri)
            mstore(add(p, 0xa0), re)
            h := keccak256(p, 0xc0)
        }
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
        bytes32 h = node.hash;
        uint256 imp = node.importMwh;
        uint256 exp = node.exportMwh;
        // every sum on a provable path fits uint64 (the root's are the header totals); a wider
        // one is shown by proving its parent (FraudProofs.proveBadSum)
        if (imp > type(uint64).max || exp > type(uint64).max) revert SumOverflow();
        for (uint256 k; k < siblings.length; ++k) {
            SumNode calldata sib = siblings[k];
            (bytes32 sh, uint256 si, uint256 se) = (sib.hash, sib.importMwh, sib.exportMwh);
            if (si > type(uint64).max || se > type(uint64).max) revert SumOverflow();
            h = (index >> k) & 1 == 1 ? hashPair(sh, si, se, h, imp, exp) : hashPair(h, imp, exp, sh, si, se);
            imp += si;
            exp += se;
            if (imp > type(uint64).max || exp > type(uint64).max) revert SumOverflow();
        }
        return SumNode(h, imp, exp);
    }
}
