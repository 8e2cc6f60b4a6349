//! Energy settlement core: the shared encoding of ARCHITECTURE.md ("One encoding"), secp256k1
//! signing and recovery, batch signing/verification in parallel, and Merkle-sum trees.
//!
//! Plain Rust without Python; `rust_core/python` is a thin PyO3 binding over this crate.

mod abi;
pub mod batch;
pub mod encoding;
mod error;
pub mod keccak;
pub mod signing;
pub mod tree;

pub use batch::{sign_readings, verify_readings, Failure};
pub use encoding::{batch_digest, domain_separator, leaf_hash, reading_digest, BatchHeader, Leaf, Reading};
pub use error::Error;
pub use keccak::keccak256;
pub use signing::{address_of, recover_signer, sign_digest};
pub use tree::{leaf_node, verify_proof, MerkleSumTree, Node};

/// A 32-byte hash (keccak-256 output, EIP-712 digest, id).
pub type Hash = [u8; 32];
/// A 20-byte Ethereum address.
pub type Address = [u8; 20];
/// A 65-byte `r‖s‖v` signature.
pub type Signature = [u8; 65];
