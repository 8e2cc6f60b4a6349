//! Malformed input is refused with the named error, never a panic.

use settlement_core::{
    recover_signer, sign_digest, sign_readings, verify_proof, verify_readings, Error, Leaf, MerkleSumTree, Node,
    Reading,
};

const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc,
    0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

fn key(byte: u8) -> [u8; 32] {
    [byte; 32]
}

fn leaf(id: u8, import: u64, prev_import: u64) -> Leaf {
    Leaf {
        reading: Reading { meter_id: [id; 32], period: 2, timestamp: 1800, import_mwh: import, export_mwh: 0 },
        prev_period: 1,
        prev_import_mwh: prev_import,
        prev_export_mwh: 0,
        signature: [7; 65],
    }
}

fn is<T: std::fmt::Debug>(r: Result<T, Error>, kind: fn(&Error) -> bool) -> String {
    let e = r.expect_err("should fail");
    assert!(kind(&e), "wrong error kind: {e:?}");
    e.to_string()
}

/// n - s (big-endian, s != 0).
fn negate(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = (d + 256 * borrow) as u8;
    }
    out
}

#[test]
fn keys_out_of_range() {
    let digest = [1u8; 32];
    is(sign_digest(&digest, &[0u8; 32]), |e| matches!(e, Error::InvalidKey(_)));
    is(sign_digest(&digest, &N), |e| matches!(e, Error::InvalidKey(_)));
    let msg = is(sign_readings(&[0; 32], &[leaf(1, 0, 0).reading; 2], &[key(1), [0; 32]]), |e| {
        matches!(e, Error::InvalidKey(_))
    });
    assert!(msg.starts_with("key 1:"), "{msg}");
}

#[test]
fn malformed_and_high_s_signatures() {
    let digest = [9u8; 32];
    let good = sign_digest(&digest, &key(3)).unwrap();
    assert!(recover_signer(&digest, &good).is_ok());
    is(recover_signer(&digest, &good[..64]), |e| matches!(e, Error::InvalidSignature(_)));
    let mut bad_v = good;
    bad_v[64] = 1;
    assert!(is(recover_signer(&digest, &bad_v), |e| matches!(e, Error::InvalidSignature(_))).contains("27 or 28"));
    // The malleated twin (r, n - s, flipped v) recovers the same key in plain ECDSA; refused here.
    let mut high = good;
    high[32..64].copy_from_slice(&negate(&good[32..64]));
    high[64] = if good[64] == 27 { 28 } else { 27 };
    assert!(is(recover_signer(&digest, &high), |e| matches!(e, Error::InvalidSignature(_))).contains("upper half"));
    let mut r_overflow = good;
    r_overflow[..32].copy_from_slice(&N);
    is(recover_signer(&digest, &r_overflow), |e| matches!(e, Error::InvalidSignature(_)));
    let mut zero = good;
    zero[..64].fill(0);
    is(recover_signer(&digest, &zero), |e| matches!(e, Error::InvalidSignature(_)));
}

#[test]
fn verify_reports_each_failure_with_reason() {
    let sep = [5u8; 32];
    let readings = [leaf(1, 0, 0).reading, leaf(2, 0, 0).reading, leaf(3, 0, 0).reading];
    let keys = [key(1), key(2), key(3)];
    let signers: Vec<[u8; 20]> = keys.iter().map(|k| settlement_core::address_of(k).unwrap()).collect();
    let sigs = sign_readings(&sep, &readings, &keys).unwrap();
    let short = sigs[1][..10].to_vec();
    let sigs: Vec<Vec<u8>> = vec![sigs[0].to_vec(), short, sigs[0].to_vec()];
    let failures = verify_readings(&sep, &readings, &sigs, &signers).unwrap();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0].index, 1);
    assert!(failures[0].reason.contains("65 bytes"), "{}", failures[0].reason);
    assert_eq!(failures[1].index, 2);
    assert!(failures[1].reason.contains("not by the registered key"), "{}", failures[1].reason);
    is(verify_readings(&sep, &readings, &sigs[..2], &signers), |e| matches!(e, Error::Encoding(_)));
}

#[test]
fn tree_refuses_order_regression_overflow_and_empty() {
    is(MerkleSumTree::build(&[]), |e| matches!(e, Error::Encoding(_)));
    let msg = is(MerkleSumTree::build(&[leaf(2, 0, 0), leaf(1, 0, 0)]), |e| matches!(e, Error::Encoding(_)));
    assert!(msg.contains("out of order"), "{msg}");
    is(MerkleSumTree::build(&[leaf(1, 0, 0), leaf(1, 0, 0)]), |e| matches!(e, Error::Encoding(_)));
    let any = MerkleSumTree::build_any_order(&[leaf(2, 1, 0), leaf(1, 2, 0)]).unwrap();
    assert_eq!(any.root(), any.leaf_node(0).unwrap().parent(&any.leaf_node(1).unwrap()).unwrap());
    is(MerkleSumTree::build_any_order(&[]), |e| matches!(e, Error::Encoding(_)));
    let msg = is(MerkleSumTree::build(&[leaf(1, 5, 0), leaf(2, 5, 6)]), |e| matches!(e, Error::RegisterRegression(_)));
    assert!(msg.starts_with("leaf 1,"), "{msg}");
    is(MerkleSumTree::build(&[leaf(1, u64::MAX, 0), leaf(2, 1, 0)]), |e| matches!(e, Error::SumOverflow(_)));
    let tree = MerkleSumTree::build(&[leaf(1, 3, 0), leaf(2, 4, 0), leaf(3, 5, 0)]).unwrap();
    is(tree.proof(3), |e| matches!(e, Error::IndexOutOfRange(_)));
    is(tree.node(3, 0), |e| matches!(e, Error::IndexOutOfRange(_)));
    assert_eq!(tree.node(0, 3).unwrap(), Node::EMPTY);
    assert_eq!(tree.node(2, 0).unwrap(), tree.root());
    assert_eq!((tree.root().import_sum, tree.depth(), tree.count()), (12, 2, 3));
}

#[test]
fn proofs_fail_when_tampered() {
    let leaves: Vec<Leaf> = (1..=5).map(|i| leaf(i, u64::from(i) * 10, 0)).collect();
    let tree = MerkleSumTree::build(&leaves).unwrap();
    let root = tree.root();
    for i in 0..leaves.len() {
        let node = tree.leaf_node(i).unwrap();
        let proof = tree.proof(i).unwrap();
        assert!(verify_proof(&root, &node, i as u64, &proof));
        assert!(!verify_proof(&root, &node, (i ^ 1) as u64, &proof));
        assert!(!verify_proof(&root, &node, i as u64 + 8, &proof), "index beyond the proof width");
        let mut tampered = proof.clone();
        tampered[1].import_sum += 1;
        assert!(!verify_proof(&root, &node, i as u64, &tampered));
        assert!(!verify_proof(&root, &node, i as u64, &proof[..2]));
    }
    let huge = Node { hash: [1; 32], import_sum: u64::MAX, export_sum: 0 };
    assert!(!verify_proof(&root, &tree.leaf_node(0).unwrap(), 0, &[huge, huge, huge]));
}
