"""rust_core against the shared vectors (tests/vectors/encoding.json), the Python reference
(rust_core.reference) and eth-account / eth-utils on the same inputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

import rust_core
from rust_core import reference as ref

VECTORS = json.loads((Path(__file__).parent / "vectors" / "encoding.json").read_text())
DOMAIN = ref.Domain(VECTORS["domain"]["chain_id"], VECTORS["domain"]["verifying_contract"])


def b(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str.removeprefix("0x"))


SEP = rust_core.domain_separator(DOMAIN.chain_id, DOMAIN.verifying_contract)
READINGS = VECTORS["readings"]


def reading_tuple(v: dict) -> tuple:
    return (b(v["meter_id"]), v["period"], v["timestamp"], v["import_mwh"], v["export_mwh"])


def leaf_tuple(v: dict) -> tuple:
    lf = v["leaf"]
    return (*reading_tuple(v), lf["prev_period"], lf["prev_import_mwh"], lf["prev_export_mwh"], b(v["signature"]))


def node_of(d: dict) -> tuple:
    return (b(d["hash"]), d["import_mwh"], d["export_mwh"])


def test_keccak_matches_eth_utils() -> None:
    for data in (b"", b"abc", bytes(range(256)) * 3):
        assert rust_core.keccak256(data) == keccak(data)


def test_domain_separator() -> None:
    assert SEP == b(VECTORS["domain"]["separator"]) == DOMAIN.separator()


@pytest.mark.parametrize("v", READINGS, ids=lambda v: v["scheme"])
def test_reading_digest_signature_and_address(v: dict) -> None:
    reading = reading_tuple(v)
    digest = rust_core.reading_digest(SEP, reading)
    assert digest == b(v["digest"]) == ref.reading_digest(DOMAIN, ref.Reading(*reading))
    key = b(v["private_key"])
    signature = rust_core.sign_digest(digest, key)
    assert signature == b(v["signature"])
    eth_signed = Account.sign_typed_data(key, DOMAIN.as_dict(), ref._READING_TYPES, ref.Reading(*reading).message())
    assert signature == bytes(eth_signed.signature)
    assert rust_core.address_of(key) == b(v["address"]) == b(Account.from_key(key).address)
    assert rust_core.recover_signer(digest, signature) == b(v["address"])
    signable = encode_typed_data(DOMAIN.as_dict(), ref._READING_TYPES, ref.Reading(*reading).message())
    assert to_checksum_address(rust_core.recover_signer(digest, signature)) == Account.recover_message(
        signable, signature=signature
    )


@pytest.mark.parametrize("v", READINGS, ids=lambda v: v["scheme"])
def test_leaf_hash_and_node(v: dict) -> None:
    leaf = leaf_tuple(v)
    assert rust_core.leaf_hash(leaf) == b(v["leaf"]["hash"])
    assert rust_core.leaf_node(leaf) == (b(v["leaf"]["hash"]), v["leaf"]["delta_import_mwh"], v["leaf"]["delta_export_mwh"])


@pytest.mark.parametrize("tree", VECTORS["trees"], ids=lambda t: f"{len(t['leaf_indices'])}-leaves")
def test_tree_root_depth_and_proofs(tree: dict) -> None:
    leaves = [leaf_tuple(READINGS[i]) for i in tree["leaf_indices"]]
    built = rust_core.MerkleSumTree(leaves)
    root = node_of(tree["root"])
    assert built.root == root
    assert built.depth == tree["depth"]
    assert built.count == len(built) == len(leaves)
    for index, proof in enumerate(tree["proofs"]):
        siblings = [node_of(n) for n in proof]
        assert built.proof(index) == siblings
        assert built.leaf_node(index) == rust_core.leaf_node(leaves[index])
        assert rust_core.verify_proof(root, built.leaf_node(index), index, siblings)


def test_batch_digest_and_operator_signatures() -> None:
    batch = VECTORS["batch"]
    header = (batch["period"], b(batch["group_id"]), b(batch["root"]), batch["total_import_mwh"],
              batch["total_export_mwh"], batch["count"], batch["epoch"])
    digest = rust_core.batch_digest(SEP, header)
    assert digest == b(batch["digest"])
    for op in batch["operators"]:
        assert rust_core.sign_digest(digest, b(op["private_key"])) == b(op["signature"])
        assert rust_core.recover_signer(digest, b(op["signature"])) == b(op["address"])


def test_batch_sign_and_verify_agree_with_vectors() -> None:
    readings = [reading_tuple(v) for v in READINGS]
    keys = [b(v["private_key"]) for v in READINGS]
    signers = [b(v["address"]) for v in READINGS]
    signatures = rust_core.sign_readings(SEP, readings, keys)
    assert signatures == [b(v["signature"]) for v in READINGS]
    assert rust_core.verify_readings(SEP, readings, signatures, signers) == []
    # Each signer registered for the next meter: every reading fails, naming both addresses.
    rotated = signers[1:] + signers[:1]
    failures = rust_core.verify_readings(SEP, readings, signatures, rotated)
    assert [i for i, _ in failures] == list(range(len(readings)))
    for (i, reason), expected in zip(failures, rotated):
        assert signers[i].hex() in reason and expected.hex() in reason


def test_lists_are_accepted_as_tuples() -> None:
    v = READINGS[0]
    assert rust_core.reading_digest(SEP, list(reading_tuple(v))) == b(v["digest"])
    assert rust_core.leaf_hash(list(leaf_tuple(v))) == b(v["leaf"]["hash"])


def test_tree_in_given_order_for_fraud_proofs() -> None:
    ordered = [leaf_tuple(READINGS[i]) for i in VECTORS["trees"][-1]["leaf_indices"]]
    swapped = [ordered[1], ordered[0], *ordered[2:]]
    with pytest.raises(rust_core.EncodingError, match="leaves out of order: leaf 1"):
        rust_core.MerkleSumTree(swapped)
    tree = rust_core.MerkleSumTree(swapped, check_order=False)
    nodes = [rust_core.leaf_node(leaf) for leaf in swapped]
    left, right = rust_core.parent_node(nodes[0], nodes[1]), rust_core.parent_node(nodes[2], nodes[3])
    assert tree.root == rust_core.parent_node(left, right)
    assert tree.root[1:] == node_of(VECTORS["trees"][-1]["root"])[1:]
    for i in range(len(swapped)):
        assert rust_core.verify_proof(tree.root, tree.leaf_node(i), i, tree.proof(i))
