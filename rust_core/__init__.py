"""Energy settlement core: the shared encoding (ARCHITECTURE.md), secp256k1 signing and
Merkle-sum trees, implemented in Rust (rust_core/core) and bound by rust_core/python.

Batch functions take whole lists and run in parallel with the GIL released. All hashes, keys,
addresses and signatures are ``bytes``. ``rust_core.reference`` is the slow pure-Python
reference the test vectors come from; ``rust_core.wire`` is the one wire schema (the
encoding's values as NamedTuples, the JSON bodies between oracle, nodes and audit as pydantic
models). Both are imported only on demand.
"""
from rust_core._native import (
    CoreError,
    EncodingError,
    InvalidKey,
    InvalidSignature,
    MerkleSumTree,
    RegisterRegression,
    SumOverflow,
    address_of,
    batch_digest,
    domain_separator,
    keccak256,
    leaf_hash,
    leaf_node,
    parent_node,
    reading_digest,
    recover_signer,
    sign_digest,
    sign_readings,
    verify_proof,
    verify_readings,
)

__all__ = [
    "CoreError",
    "EncodingError",
    "InvalidKey",
    "InvalidSignature",
    "MerkleSumTree",
    "RegisterRegression",
    "SumOverflow",
    "address_of",
    "batch_digest",
    "domain_separator",
    "keccak256",
    "leaf_hash",
    "leaf_node",
    "parent_node",
    "reading_digest",
    "recover_signer",
    "sign_digest",
    "sign_readings",
    "verify_proof",
    "verify_readings",
]
