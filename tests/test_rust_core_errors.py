"""Malformed input to rust_core raises the named exception with a message naming what was wrong."""
from __future__ import annotations

import pytest

import rust_core
from rust_core import (
    CoreError,
    EncodingError,
    InvalidKey,
    InvalidSignature,
    MerkleSumTree,
    RegisterRegression,
    SumOverflow,
)

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SEP = rust_core.domain_separator(31337, bytes(20))
KEY = (7).to_bytes(32, "big")
U64_MAX = 2**64 - 1


def reading(mid: int = 1, imp: int = 100, exp: int = 0) -> tuple:
    return (mid.to_bytes(32, "big"), 2, 1800, imp, exp)


def leaf(mid: int, imp: int, prev_imp: int, exp: int = 0, prev_exp: int = 0) -> tuple:
    return (*reading(mid, imp, exp), 1, prev_imp, prev_exp, b"\x01" * 65)


def test_hierarchy() -> None:
    for exc in (InvalidKey, InvalidSignature, EncodingError, SumOverflow, RegisterRegression):
        assert issubclass(exc, CoreError)
    assert issubclass(CoreError, ValueError)


@pytest.mark.parametrize("key", [b"\x01" * 31, b"\x01" * 33, bytes(32), N.to_bytes(32, "big"), b"\xff" * 32])
def test_invalid_private_keys(key: bytes) -> None:
    with pytest.raises(InvalidKey, match="private key"):
        rust_core.sign_digest(bytes(32), key)
    with pytest.raises(InvalidKey, match="private key"):
        rust_core.address_of(key)


def test_batch_sign_names_the_bad_key() -> None:
    with pytest.raises(InvalidKey, match=r"^key 2"):
        rust_core.sign_readings(SEP, [reading(i) for i in range(3)], [KEY, KEY, bytes(32)])
    with pytest.raises(InvalidKey, match=r"key 1 must be 32 bytes, got 3"):
        rust_core.sign_readings(SEP, [reading(i) for i in range(3)], [KEY, b"abc", KEY])
    with pytest.raises(EncodingError, match="3 readings but 2 keys"):
        rust_core.sign_readings(SEP, [reading(i) for i in range(3)], [KEY, KEY])


def _high_s_twin(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:64], "big")
    return sig[:32] + (N - s).to_bytes(32, "big") + bytes([55 - sig[64]])


MALFORMED = {
    "short": (lambda sig: sig[:64], "65 bytes, got 64"),
    "v": (lambda sig: sig[:64] + b"\x01", "v must be 27 or 28, got 1"),
    "high-s": (_high_s_twin, "upper half"),
    "r-overflow": (lambda sig: N.to_bytes(32, "big") + sig[32:], "r is not below the curve order"),
    "zero": (lambda sig: bytes(64) + sig[64:], "signature"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_signatures(name: str) -> None:
    mangle, message = MALFORMED[name]
    digest = rust_core.reading_digest(SEP, reading())
    bad = mangle(rust_core.sign_digest(digest, KEY))
    with pytest.raises(InvalidSignature, match=message):
        rust_core.recover_signer(digest, bad)
    # In a batch the same signature is a per-reading failure, and the good ones pass.
    readings = [reading(1), reading(2)]
    sigs = rust_core.sign_readings(SEP, readings, [KEY, KEY])
    signer = rust_core.address_of(KEY)
    digest2 = rust_core.reading_digest(SEP, readings[1])
    sigs[1] = mangle(rust_core.sign_digest(digest2, KEY))
    [(index, reason)] = rust_core.verify_readings(SEP, readings, sigs, [signer, signer])
    assert index == 1
    assert message in reason


def test_verify_list_lengths_must_match() -> None:
    sigs = rust_core.sign_readings(SEP, [reading()], [KEY])
    with pytest.raises(EncodingError, match="1 readings but 2 signers"):
        rust_core.verify_readings(SEP, [reading()], sigs, [bytes(20), bytes(20)])
    with pytest.raises(EncodingError, match="signer 0 must be 20 bytes"):
        rust_core.verify_readings(SEP, [reading()], sigs, [bytes(32)])


@pytest.mark.parametrize(
    ("bad", "exc", "message"),
    [
        ((b"\x01" * 31, 2, 3, 4, 5), EncodingError, "reading 1 meter_id must be 32 bytes, got 31"),
        ((b"\x01" * 32, -1, 3, 4, 5), EncodingError, "reading 1 period must fit in uint64"),
        ((b"\x01" * 32, 2, 2**64, 4, 5), EncodingError, "reading 1 timestamp must fit in uint64"),
        ((b"\x01" * 32, 2, 3, 4.0, 5), TypeError, "reading 1 import_mwh must be an int"),
        ((b"\x01" * 32, 2, 3, 4), EncodingError, "reading 1 must have 5 fields"),
        ({"meter_id": b"\x01" * 32}, TypeError, "reading 1 must be a tuple"),
        (("01" * 32, 2, 3, 4, 5), TypeError, "reading 1 meter_id must be bytes"),
    ],
)
def test_malformed_readings_name_the_field(bad: tuple, exc: type, message: str) -> None:
    with pytest.raises(exc, match=message):
        rust_core.sign_readings(SEP, [reading(), bad], [KEY, KEY])


def test_single_values() -> None:
    with pytest.raises(EncodingError, match="domain_sep must be 32 bytes"):
        rust_core.reading_digest(b"\x00" * 20, reading())
    with pytest.raises(EncodingError, match="header count must fit in uint32"):
        rust_core.batch_digest(SEP, (1, bytes(32), bytes(32), 0, 0, 2**32, 0))
    with pytest.raises(EncodingError, match="header epoch must fit in uint32"):
        rust_core.batch_digest(SEP, (1, bytes(32), bytes(32), 0, 0, 1, 2**32))
    with pytest.raises(EncodingError, match="chain_id must fit in uint256"):
        rust_core.domain_separator(2**256, bytes(20))
    with pytest.raises(EncodingError, match="chain_id must fit in uint256"):
        rust_core.domain_separator(-1, bytes(20))
    with pytest.raises(EncodingError, match="verifying_contract must be 20 bytes"):
        rust_core.domain_separator(1, bytes(32))
    with pytest.raises(EncodingError, match="leaf signature must be 65 bytes"):
        rust_core.leaf_hash((*reading(), 1, 0, 0, b"\x01" * 64))


def test_tree_refuses_out_of_order_and_duplicate_leaves() -> None:
    with pytest.raises(EncodingError, match=r"leaves out of order: leaf 2 .* leaf 1"):
        MerkleSumTree([leaf(1, 5, 0), leaf(3, 5, 0), leaf(2, 5, 0)])
    with pytest.raises(EncodingError, match="out of order"):
        MerkleSumTree([leaf(1, 5, 0), leaf(1, 5, 0)])
    with pytest.raises(EncodingError, match="at least one leaf"):
        MerkleSumTree([])


def test_register_regression() -> None:
    with pytest.raises(RegisterRegression, match=r"leaf 1, meter 0x0+02: import register ran backwards from 6 to 5"):
        MerkleSumTree([leaf(1, 5, 0), leaf(2, 5, 6)])
    with pytest.raises(RegisterRegression, match="export register ran backwards"):
        rust_core.leaf_node(leaf(1, 5, 0, exp=1, prev_exp=2))


def test_sum_overflow() -> None:
    with pytest.raises(SumOverflow, match="import sum .* exceeds uint64"):
        MerkleSumTree([leaf(1, U64_MAX, 0), leaf(2, 1, 0)])
    with pytest.raises(SumOverflow, match="export sum"):
        rust_core.parent_node((bytes(32), 0, U64_MAX), (bytes(32), 0, 1))


def test_tree_indices() -> None:
    tree = MerkleSumTree([leaf(1, 5, 0), leaf(2, 6, 0), leaf(3, 7, 0)])
    for bad in (3, -1):
        with pytest.raises(IndexError):
            tree.proof(bad)
        with pytest.raises(IndexError):
            tree.leaf_node(bad)
    with pytest.raises(IndexError, match="level 3 out of range"):
        tree.node(3, 0)
    assert tree.node(0, 3) == (bytes(32), 0, 0)
    assert tree.node(tree.depth, 0) == tree.root
    assert not rust_core.verify_proof(tree.root, tree.leaf_node(0), -1, tree.proof(0))
