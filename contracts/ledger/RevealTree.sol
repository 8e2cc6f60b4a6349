// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Leaf} from "../lib/SettlementTypes.sol";
import {MerkleSum} from "../lib/MerkleSum.sol";

/// @title RevealTree
/// @notice The tree rebuilding of data availability reveals (DataAvailability) and each
/// revealer's progress, in a contract of its own so that the ledger fits EIP-170. The ledger
/// deploys it at its construction, checks who may reveal what, and passes each chunk on; only
/// that ledger may call it.
contract RevealTree {
    /// @dev Levels of the reveal stack: count is a uint32, so depth <= 32.
    uint256 private constant STACK_LEVELS = 33;
    /// @dev Bytes of one Leaf in calldata (11 words, a static struct).
    uint256 private constant LEAF_BYTES = 352;

    /// @notice The ledger that deployed this contract, its only caller.
    address public immutable ledger = msg.sender;

    /// @dev One revealer's progress over one batch: the leaves revealed so far ([0, next)), the
    /// last meter id (strict order across chunks), and the complete subtrees so far: one per
    /// set bit of `next`, at that bit's level (hash, and sums packed import << 128 | export).
    struct RevealProgress {
        uint32 next;
        bytes32 lastMeterId;
        bytes32[STACK_LEVELS] hashes;
        uint256[STACK_LEVELS] sums;
    }


    mapping(bytes32 batchKey => mapping(address revealer => RevealProgress)) private _reveals;

    /// @notice Called by another than the ledger.
    error NotLedger();
    /// @notice A chunk must continue the revealer's progress (or restart at 0).
    error RevealOutOfSequence(uint256 firstIndex, uint256 expected);
    /// @notice An empty chunk, or one reaching past the batch's count.
    error RevealOutOfRange(uint256 end, uint256 count);
    /// @notice The leaf at `index` does not have a strictly higher meter id than the one before.
    error RevealOutOfOrder(uint256 index);
    /// @notice The leaf at `index` has a word wider than its field, or a register that ran backwards.
    error RevealMalformedLeaf(uint256 index);

    /// @notice Adds leaves [firstIndex, firstIndex + leaves.length) to `revealer`'s progress over
    /// the submission `key` of a batch of `count` leaves (firstIndex 0 restarts it).
    /// @return complete whether the chunk reached `count`
    /// @return root once complete, the root over the revealed leaves (padded to 2^depth)
    /// @return sums its sums, import << 128 | export
    function absorb(bytes32 key, address revealer, uint256 firstIndex, uint256 count, Leaf[] calldata leaves)
        external
        returns (bool complete, bytes32 root, uint256 sums)
    {
        if (msg.sender != ledger) revert NotLedger();
        RevealProgress storage r = _reveals[key][revealer];
        uint256 next = firstIndex == 0 ? 0 : r.next;
        if (firstIndex != next) revert RevealOutOfSequence(firstIndex, next);
        uint256 end = next + leaves.length;
        if (leaves.length == 0 || end > count) revert RevealOutOfRange(end, count);

        bytes32[STACK_LEVELS] memory hs;
        uint256[STACK_LEVELS] memory ss;
        for (uint256 l; (next >> l) != 0; ++l) {
            if ((next >> l) & 1 == 1) (hs[l], ss[l]) = (r.hashes[l], r.sums[l]);
        }
        bytes32 last = _absorb(leaves, next, next == 0 ? bytes32(0) : r.lastMeterId, hs, ss);
        if (end < count) {
            for (uint256 l; (end >> l) != 0; ++l) {
                if ((end >> l) & 1 == 1) (r.hashes[l], r.sums[l]) = (hs[l], ss[l]);
            }
            (r.next, r.lastMeterId) = (uint32(end), last);
            return (false, 0, 0);
        }
        (root, sums) = _fold(hs, ss, count);
        return (true, root, sums);
    }

    /// @dev Pushes the chunk's leaf nodes (positions next, next + 1, ...) onto the stack of
    /// complete subtrees, checking strict meter order; returns the last meter id.
    function _absorb(
        Leaf[] calldata leaves,
        uint256 next,
        bytes32 last,
        bytes32[STACK_LEVELS] memory hs,
        uint256[STACK_LEVELS] memory ss
    ) internal pure returns (bytes32) {
        for (uint256 i; i < leaves.length; ++i) {
            (bytes32 id, bytes32 h, uint256 s) = _leafNode(leaves, i, next);
            if (id <= last) revert RevealOutOfOrder(next);
            last = id;
            uint256 l;
            for (; (next >> l) & 1 == 1; ++l) (h, s) = _parent(hs[l], ss[l], h, s);
            (hs[l], ss[l]) = (h, s);
            ++next;
        }
        return last;
    }

    /// @dev The leaf node of leaves[i] (its id, leafHash, and deltas packed import << 128 |
    /// export), hashed straight from calldata (no memory growth per leaf). Reverts for a word
    /// wider than its field or a register that ran backwards.
    function _leafNode(Leaf[] calldata leaves, uint256 i, uint256 index)
        private
        pure
        returns (bytes32 id, bytes32 h, uint256 sums)
    {
        bool bad;
        uint256 dImp;
        uint256 dExp;
        assembly ("memory-safe") {
            let q := add(leaves.offset, mul(i, LEAF_BYTES))
            id := calldataload(q)
            let wide := 0
            for { let w := 1 } lt(w, 8) { w := add(w, 1) } {
                wide := or(wide, shr(64, calldataload(add(q, mul(w, 0x20)))))
            }
            wide := or(wide, shr(8, calldataload(add(q, 0x140))))
            let im := calldataload(add(q, 0x60))
            let ex := calldataload(add(q, 0x80))
            let pImp := calldataload(add(q, 0xc0))
            let pExp := calldataload(add(q, 0xe0))
            bad := or(iszero(iszero(wide)), or(lt(im, pImp), lt(ex, pExp)))
            dImp := sub(im, pImp)
            dExp := sub(ex, pExp)
            let p := mload(0x40)
            calldatacopy(p, q, LEAF_BYTES)
            mstore(0, keccak256(p, LEAF_BYTES))
            h := keccak256(0, 0x20)
        }
        if (bad) revert RevealMalformedLeaf(index);
        sums = dImp << 128 | dExp;
    }

    /// @dev The parent of two nodes with packed sums (each sum fits 96 bits: 2^32 uint64 deltas).
    function _parent(bytes32 lh, uint256 ls, bytes32 rh, uint256 rs) internal pure returns (bytes32, uint256) {
        return (MerkleSum.hashPair(lh, ls >> 128, uint128(ls), rh, rs >> 128, uint128(rs)), ls + rs);
    }

    /// @dev The root over `count` leaves whose complete subtrees are on the stack, the positions
    /// from count to 2^depth being padding (EMPTY_NODE at the leaves, parents of padding above).
    function _fold(bytes32[STACK_LEVELS] memory hs, uint256[STACK_LEVELS] memory ss, uint256 count)
        private
        pure
        returns (bytes32 h, uint256 s)
    {
        uint256 d = MerkleSum.depth(count);
        if (count == 1 << d) return (hs[d], ss[d]);
        bytes32 pad; // the all-padding subtree at level l (sums 0)
        // h, s: the subtree at level l that holds position `count` (padding from there on)
        for (uint256 l; l < d; ++l) {
            if ((count >> l) & 1 == 1) (h, s) = _parent(hs[l], ss[l], h, s);
            else (h, s) = _parent(h, s, pad, 0);
            pad = MerkleSum.hashPair(pad, 0, 0, pad, 0, 0);
        }
    }
}
