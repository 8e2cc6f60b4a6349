//! The shared vectors (tests/vectors/encoding.json, generated from rust_core.reference) byte for byte.

use serde_json::Value;
use settlement_core::encoding::{BATCH_TYPEHASH, READING_TYPEHASH};
use settlement_core::{
    address_of, batch_digest, domain_separator, leaf_hash, leaf_node, reading_digest, recover_signer, sign_digest,
    sign_readings, verify_proof, verify_readings, BatchHeader, Leaf, MerkleSumTree, Node, Reading,
};

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/encoding.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("vector JSON")
}

fn bytes<const N: usize>(v: &Value) -> [u8; N] {
    let s = v.as_str().expect("hex string");
    hex::decode(s.trim_start_matches("0x")).expect("hex").try_into().expect("length")
}

fn uint(v: &Value) -> u64 {
    v.as_u64().expect("uint64")
}

fn domain(doc: &Value) -> [u8; 32] {
    let mut chain = [0u8; 32];
    chain[24..].copy_from_slice(&uint(&doc["domain"]["chain_id"]).to_be_bytes());
    domain_separator(&chain, &bytes(&doc["domain"]["verifying_contract"]))
}

fn reading(v: &Value) -> Reading {
    Reading {
        meter_id: bytes(&v["meter_id"]),
        period: uint(&v["period"]),
        timestamp: uint(&v["timestamp"]),
        import_mwh: uint(&v["import_mwh"]),
        export_mwh: uint(&v["export_mwh"]),
    }
}

fn leaf(v: &Value) -> Leaf {
    Leaf {
        reading: reading(v),
        prev_period: uint(&v["leaf"]["prev_period"]),
        prev_import_mwh: uint(&v["leaf"]["prev_import_mwh"]),
        prev_export_mwh: uint(&v["leaf"]["prev_export_mwh"]),
        signature: bytes(&v["signature"]),
    }
}

fn node(v: &Value) -> Node {
    Node { hash: bytes(&v["hash"]), import_sum: uint(&v["import_mwh"]), export_sum: uint(&v["export_mwh"]) }
}

#[test]
fn typehashes_and_domain_separator() {
    let doc = vectors();
    assert_eq!(*READING_TYPEHASH, bytes::<32>(&doc["reading_typehash"]));
    assert_eq!(*BATCH_TYPEHASH, bytes::<32>(&doc["batch_typehash"]));
    assert_eq!(domain(&doc), bytes::<32>(&doc["domain"]["separator"]));
}

#[test]
fn readings_digest_sign_recover_and_leaf() {
    let doc = vectors();
    let sep = domain(&doc);
    for v in doc["readings"].as_array().unwrap() {
        let rd = reading(v);
        assert_eq!(rd.struct_hash(), bytes::<32>(&v["struct_hash"]));
        let digest = reading_digest(&sep, &rd);
        assert_eq!(digest, bytes::<32>(&v["digest"]));
        let key = bytes::<32>(&v["private_key"]);
        let sig = sign_digest(&digest, &key).unwrap();
        assert_eq!(sig, bytes::<65>(&v["signature"]));
        assert_eq!(address_of(&key).unwrap(), bytes::<20>(&v["address"]));
        assert_eq!(recover_signer(&digest, &sig).unwrap(), bytes::<20>(&v["address"]));
        let lf = leaf(v);
        assert_eq!(
            lf.encoded().to_vec(),
            hex::decode(v["leaf"]["encoded"].as_str().unwrap().trim_start_matches("0x")).unwrap()
        );
        assert_eq!(leaf_hash(&lf), bytes::<32>(&v["leaf"]["hash"]));
        let n = leaf_node(&lf).unwrap();
        assert_eq!(
            (n.import_sum, n.export_sum),
            (uint(&v["leaf"]["delta_import_mwh"]), uint(&v["leaf"]["delta_export_mwh"]))
        );
    }
}

#[test]
fn batch_sign_and_verify() {
    let doc = vectors();
    let sep = domain(&doc);
    let vs = doc["readings"].as_array().unwrap();
    let readings: Vec<Reading> = vs.iter().map(reading).collect();
    let keys: Vec<[u8; 32]> = vs.iter().map(|v| bytes(&v["private_key"])).collect();
    let signers: Vec<[u8; 20]> = vs.iter().map(|v| bytes(&v["address"])).collect();
    let sigs = sign_readings(&sep, &readings, &keys).unwrap();
    assert_eq!(sigs, vs.iter().map(|v| bytes::<65>(&v["signature"])).collect::<Vec<_>>());
    assert!(verify_readings(&sep, &readings, &sigs, &signers).unwrap().is_empty());
    let mut swapped = signers.clone();
    swapped.swap(0, 2);
    let failures = verify_readings(&sep, &readings, &sigs, &swapped).unwrap();
    assert_eq!(failures.iter().map(|f| f.index).collect::<Vec<_>>(), vec![0, 2]);
}

#[test]
fn trees_roots_and_proofs() {
    let doc = vectors();
    let vs = doc["readings"].as_array().unwrap();
    for t in doc["trees"].as_array().unwrap() {
        let leaves: Vec<Leaf> =
            t["leaf_indices"].as_array().unwrap().iter().map(|i| leaf(&vs[uint(i) as usize])).collect();
        let tree = MerkleSumTree::build(&leaves).unwrap();
        let root = node(&t["root"]);
        assert_eq!(tree.root(), root);
        assert_eq!(u64::from(tree.depth()), uint(&t["depth"]));
        for (i, proof) in t["proofs"].as_array().unwrap().iter().enumerate() {
            let siblings: Vec<Node> = proof.as_array().unwrap().iter().map(node).collect();
            assert_eq!(tree.proof(i).unwrap(), siblings);
            assert!(verify_proof(&root, &tree.leaf_node(i).unwrap(), i as u64, &siblings));
        }
    }
}

#[test]
fn batch_header_digest_and_operator_signatures() {
    let doc = vectors();
    let b = &doc["batch"];
    let header = BatchHeader {
        period: uint(&b["period"]),
        group_id: bytes(&b["group_id"]),
        root: bytes(&b["root"]),
        total_import_mwh: uint(&b["total_import_mwh"]),
        total_export_mwh: uint(&b["total_export_mwh"]),
        count: uint(&b["count"]) as u32,
        epoch: uint(&b["epoch"]) as u32,
    };
    let digest = batch_digest(&domain(&doc), &header);
    assert_eq!(digest, bytes::<32>(&b["digest"]));
    for op in b["operators"].as_array().unwrap() {
        assert_eq!(sign_digest(&digest, &bytes(&op["private_key"])).unwrap(), bytes::<65>(&op["signature"]));
        assert_eq!(recover_signer(&digest, &bytes::<65>(&op["signature"])).unwrap(), bytes::<20>(&op["address"]));
    }
}
