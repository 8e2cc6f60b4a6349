//! Keccak-256 as Ethereum uses it (the original Keccak padding, not SHA3-256), on the CRYPTOGAMS
//! assembly permutation (keccak-asm, as alloy uses): hashing dominates tree building.

use keccak_asm::Keccak256;

use crate::Hash;

/// keccak256 of `data`.
pub fn keccak256(data: &[u8]) -> Hash {
    Keccak256::digest(data).into()
}
