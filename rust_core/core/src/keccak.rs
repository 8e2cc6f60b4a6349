//! Keccak-256 as Ethereum uses it (the original Keccak padding, not SHA3-256).

use tiny_keccak::{Hasher, Keccak};

use crate::Hash;

/// keccak256 of `data`.
pub fn keccak256(data: &[u8]) -> Hash {
    let mut hasher = Keccak::v256();
    hasher.update(data);
    let mut out = [0u8; 32];
    hasher.finalize(&mut out);
    out
}
