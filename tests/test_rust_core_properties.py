"""Hypothesis round-trips of rust_core against rust_core.reference and eth-account."""
from __future__ import annotations

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

import rust_core
from rust_core import reference as ref

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
U64 = st.integers(0, 2**64 - 1)
FEW = settings(max_examples=30, deadline=None)

keys = st.integers(1, N - 1).map(lambda k: k.to_bytes(32, "big"))
domains = st.tuples(st.integers(0, 2**256 - 1), st.binary(min_size=20, max_size=20))
readings = st.tuples(st.binary(min_size=32, max_size=32), U64, U64, U64, U64)


def ref_domain(chain_id: int, contract: bytes) -> ref.Domain:
    return ref.Domain(chain_id, "0x" + contract.hex())


@FEW
@given(domain=domains, reading=readings, key=keys)
def test_sign_then_recover_matches_eth_account(domain: tuple, reading: tuple, key: bytes) -> None:
    sep = rust_core.domain_separator(*domain)
    assert sep == ref_domain(*domain).separator()
    digest = rust_core.reading_digest(sep, reading)
    assert digest == ref.reading_digest(ref_domain(*domain), ref.Reading(*reading))
    signature = rust_core.sign_digest(digest, key)
    assert signature == ref.sign_reading(ref_domain(*domain), ref.Reading(*reading), key)
    address = rust_core.address_of(key)
    assert address == bytes.fromhex(Account.from_key(key).address[2:])
    assert rust_core.recover_signer(digest, signature) == address
    assert rust_core.verify_readings(sep, [reading], [signature], [address]) == []


@FEW
@given(batch=st.lists(st.tuples(readings, keys), min_size=1, max_size=12), data=st.data())
def test_batch_verify_flags_exactly_the_wrong_signers(batch: list, data: st.DataObject) -> None:
    sep = rust_core.domain_separator(1, bytes(20))
    rds = [r for r, _ in batch]
    ks = [k for _, k in batch]
    sigs = rust_core.sign_readings(sep, rds, ks)
    assert sigs == [rust_core.sign_digest(rust_core.reading_digest(sep, r), k) for r, k in batch]
    signers = [rust_core.address_of(k) for k in ks]
    wrong = data.draw(st.sets(st.integers(0, len(batch) - 1)))
    claimed = [bytes(20) if i in wrong else s for i, s in enumerate(signers)]
    failures = rust_core.verify_readings(sep, rds, sigs, claimed)
    assert [i for i, _ in failures] == sorted(wrong)
    for i, reason in failures:
        assert signers[i].hex() in reason


@st.composite
def leaf_lists(draw: st.DrawFn) -> list[tuple]:
    ids = sorted(draw(st.sets(st.binary(min_size=32, max_size=32), min_size=1, max_size=40)))
    leaves = []
    for mid in ids:
        prev_imp, prev_exp = draw(st.integers(0, 2**56)), draw(st.integers(0, 2**56))
        imp, exp = prev_imp + draw(st.integers(0, 2**50)), prev_exp + draw(st.integers(0, 2**50))
        period = draw(st.integers(1, 2**40))
        sig = draw(st.binary(min_size=64, max_size=64)) + bytes([draw(st.sampled_from([27, 28]))])
        leaves.append((mid, period, period * 900, imp, exp, period - 1, prev_imp, prev_exp, sig))
    return leaves


def ref_leaf(t: tuple) -> ref.Leaf:
    return ref.Leaf(ref.Reading(*t[:5]), t[5], t[6], t[7], t[8])


@FEW
@given(leaves=leaf_lists())
def test_tree_matches_reference_and_every_proof_verifies(leaves: list[tuple]) -> None:
    tree = rust_core.MerkleSumTree(leaves)
    levels = ref.build_levels([ref_leaf(t) for t in leaves])
    assert tree.root == levels[-1][0]
    assert tree.depth == ref.tree_depth(len(leaves))
    for index, t in enumerate(leaves):
        assert rust_core.leaf_hash(t) == ref_leaf(t).hash()
        proof = tree.proof(index)
        assert proof == ref.proof(levels, index)
        node = tree.leaf_node(index)
        assert rust_core.verify_proof(tree.root, node, index, proof)
        assert ref.verify_proof(tree.root, node, index, proof)
        forged = (node[0], node[1] + 1, node[2])
        assert not rust_core.verify_proof(tree.root, forged, index, proof)
        if len(leaves) > 1:
            assert not rust_core.verify_proof(tree.root, node, index ^ 1, proof)
