"""The contracts' reading digest, batch digest, leaf hash and parent hash equal the shared vectors."""
import json
from pathlib import Path

from settlement_builders import leaf_struct, ref

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "encoding.json").read_text())
H = bytes.fromhex


def vector_leaf(v) -> ref.Leaf:
    reading = ref.Reading(H(v["meter_id"][2:]), v["period"], v["timestamp"], v["import_mwh"], v["export_mwh"])
    lf = v["leaf"]
    return ref.Leaf(reading, lf["prev_period"], lf["prev_import_mwh"], lf["prev_export_mwh"], H(v["signature"][2:]))


def test_typehashes(ledger):
    assert ledger.READING_TYPEHASH() == H(VECTORS["reading_typehash"][2:])
    assert ledger.BATCH_TYPEHASH() == H(VECTORS["batch_typehash"][2:])


def test_domain_and_digests(ledger, domain):
    assert ledger.domainSeparator() == domain.separator()
    for v in VECTORS["readings"]:
        leaf = vector_leaf(v)
        assert ledger.readingDigest(leaf_struct(leaf)) == ref.reading_digest(domain, leaf.reading)
    b = VECTORS["batch"]
    header = ref.BatchHeader(b["period"], H(b["group_id"][2:]), H(b["root"][2:]), b["total_import_mwh"],
                             b["total_export_mwh"], b["count"], b["epoch"])
    assert ledger.batchDigest(tuple(header.message().values())) == ref.batch_digest(domain, header)
    # and the vector's own digest under the vector's domain, recomputed the same way
    vdomain = ref.Domain(VECTORS["domain"]["chain_id"], VECTORS["domain"]["verifying_contract"])
    assert ref.batch_digest(vdomain, header) == H(b["digest"][2:])


def test_leaf_hashes(ledger):
    for v in VECTORS["readings"]:
        assert ledger.leafHash(leaf_struct(vector_leaf(v))) == H(v["leaf"]["hash"][2:])


def test_parent_hash_rebuilds_vector_roots(ledger):
    """Fold each vector proof with the contract's parentHash: every path must reach the root."""
    readings = VECTORS["readings"]
    for tree in VECTORS["trees"]:
        for pos, (ri, proof) in enumerate(zip(tree["leaf_indices"], tree["proofs"])):
            lf = readings[ri]["leaf"]
            node = (H(lf["hash"][2:]), lf["delta_import_mwh"], lf["delta_export_mwh"])
            idx = pos
            for sib in proof:
                s = (H(sib["hash"][2:]), sib["import_mwh"], sib["export_mwh"])
                left, right = (s, node) if idx & 1 else (node, s)
                node = (ledger.parentHash(left, right), left[1] + right[1], left[2] + right[2])
                idx >>= 1
            root = tree["root"]
            assert node == (H(root["hash"][2:]), root["import_mwh"], root["export_mwh"])
