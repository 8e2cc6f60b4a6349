"""Typed stubs of the native module rust_core._native (Rust: rust_core/python)."""
from collections.abc import Sequence
from typing import final

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

# Tuples (lists of the same fields are accepted too).
_Reading = tuple[bytes, int, int, int, int]
"""(meter_id: bytes32, period, timestamp, import_mwh, export_mwh)"""
_Leaf = tuple[bytes, int, int, int, int, int, int, int, bytes]
"""(meter_id, period, timestamp, import_mwh, export_mwh, prev_period, prev_import_mwh,
prev_export_mwh, signature65)"""
_Node = tuple[bytes, int, int]
"""(hash: bytes32, import_sum, export_sum)"""
_BatchHeader = tuple[int, bytes, bytes, int, int, int, int]
"""(period, group_id, root, total_import_mwh, total_export_mwh, count, epoch)"""

class CoreError(ValueError):
    """Base of every rust_core error."""

class InvalidKey(CoreError):
    """Private key not 32 bytes, zero, or not below the curve order."""

class InvalidSignature(CoreError):
    """Signature not 65 bytes, v not 27/28, s in the upper half, r out of range, or unrecoverable."""

class EncodingError(CoreError):
    """Wrong byte length, integer outside its uint range, wrong tuple size, list lengths that
    differ, leaves not in strictly ascending meter id order, or an empty tree."""

class SumOverflow(CoreError):
    """A Merkle-sum exceeds uint64."""

class RegisterRegression(CoreError):
    """A leaf's register is below its previous register (negative delta)."""

def keccak256(data: bytes) -> bytes: ...
def domain_separator(chain_id: int, verifying_contract: bytes) -> bytes:
    """EIP-712 domain separator (name EnergySettlement, version 1); chain_id is a uint256."""

def reading_digest(domain_sep: bytes, reading: _Reading) -> bytes: ...
def batch_digest(domain_sep: bytes, header: _BatchHeader) -> bytes: ...
def sign_digest(digest: bytes, private_key: bytes) -> bytes:
    """65-byte r||s||v, v in {27, 28}, low s, deterministic (RFC 6979, same as eth-account)."""

def recover_signer(digest: bytes, signature: bytes) -> bytes:
    """20-byte address; raises InvalidSignature for malformed, high-s or unrecoverable signatures."""

def address_of(private_key: bytes) -> bytes: ...
def sign_readings(domain_sep: bytes, readings: Sequence[_Reading], keys: Sequence[bytes]) -> list[bytes]:
    """Signs reading i with keys[i], in parallel with the GIL released."""

def verify_readings(
    domain_sep: bytes, readings: Sequence[_Reading], signatures: Sequence[bytes], signers: Sequence[bytes]
) -> list[tuple[int, str]]:
    """(index, reason) for every reading whose signature is malformed or not by signers[i];
    empty when all are good. Parallel, GIL released. Lists of different lengths raise EncodingError."""

def leaf_hash(leaf: _Leaf) -> bytes: ...
def leaf_node(leaf: _Leaf) -> _Node:
    """(leaf_hash, import delta, export delta); RegisterRegression if a register ran backwards."""

def parent_node(left: _Node, right: _Node) -> _Node:
    """Inner node of two children; SumOverflow if a sum exceeds uint64."""

def verify_proof(root: _Node, node: _Node, index: int, siblings: Sequence[_Node]) -> bool:
    """Whether the siblings (leaf level up) lead from node at leaf index to root."""

@final
class MerkleSumTree:
    """Merkle-sum tree over leaves in strictly ascending meter id order (built in parallel)."""

    def __new__(cls, leaves: Sequence[_Leaf], *, check_order: bool = True) -> MerkleSumTree:
        """check_order=False builds over leaves in the order given (to prove a peer's batch out of order)."""
    @property
    def root(self) -> _Node: ...
    @property
    def count(self) -> int: ...
    @property
    def depth(self) -> int: ...
    def proof(self, index: int) -> list[_Node]:
        """Sibling nodes from the leaf level up; IndexError outside 0..count-1."""

    def leaf_node(self, index: int) -> _Node: ...
    def node(self, level: int, index: int) -> _Node:
        """Any node including padding; level 0 = leaves, level depth = root."""

    def __len__(self) -> int: ...
