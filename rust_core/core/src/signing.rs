//! secp256k1 ECDSA over 32-byte digests with Ethereum's conventions: 65-byte `r‖s‖v`,
//! `v ∈ {27, 28}`, low `s` (libsecp256k1 signs low-s; recovery refuses high s like OpenZeppelin).

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SecretKey, SECP256K1};

use crate::keccak::keccak256;
use crate::{Address, Error, Hash, Signature};

/// n / 2 of secp256k1, big-endian: the largest `s` a signature may carry.
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e,
    0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

fn secret_key(private_key: &[u8; 32]) -> Result<SecretKey, Error> {
    SecretKey::from_byte_array(*private_key)
        .map_err(|_| Error::InvalidKey("private key must be a non-zero scalar below the curve order".into()))
}

fn address_of_public(public: &PublicKey) -> Address {
    let uncompressed = public.serialize_uncompressed();
    let hash = keccak256(&uncompressed[1..]);
    let mut addr = [0u8; 20];
    addr.copy_from_slice(&hash[12..]);
    addr
}

/// The Ethereum address of a private key.
pub fn address_of(private_key: &[u8; 32]) -> Result<Address, Error> {
    Ok(address_of_public(&PublicKey::from_secret_key_global(&secret_key(private_key)?)))
}

/// Signs a digest: deterministic (RFC 6979), low `s`, `v ∈ {27, 28}`.
pub fn sign_digest(digest: &Hash, private_key: &[u8; 32]) -> Result<Signature, Error> {
    let key = secret_key(private_key)?;
    let (recid, compact) = SECP256K1.sign_ecdsa_recoverable(Message::from_digest(*digest), &key).serialize_compact();
    let v = match recid {
        RecoveryId::Zero => 27,
        RecoveryId::One => 28,
        // Only when r overflowed the order (probability ~2^-127); Ethereum cannot express it.
        _ => return Err(Error::InvalidSignature("signature needs recovery id 2 or 3, not expressible as v".into())),
    };
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&compact);
    out[64] = v;
    Ok(out)
}

/// The address whose key signed `digest`; refuses malformed, high-s and unrecoverable signatures.
pub fn recover_signer(digest: &Hash, signature: &[u8]) -> Result<Address, Error> {
    if signature.len() != 65 {
        return Err(Error::InvalidSignature(format!("signature must be 65 bytes, got {}", signature.len())));
    }
    let v = signature[64];
    let recid = match v {
        27 => RecoveryId::Zero,
        28 => RecoveryId::One,
        _ => return Err(Error::InvalidSignature(format!("signature v must be 27 or 28, got {v}"))),
    };
    if signature[32..64] > HALF_ORDER[..] {
        return Err(Error::InvalidSignature("signature s is in the upper half of the curve order".into()));
    }
    let sig = RecoverableSignature::from_compact(&signature[..64], recid)
        .map_err(|_| Error::InvalidSignature("signature r is not below the curve order".into()))?;
    let public = SECP256K1
        .recover_ecdsa(Message::from_digest(*digest), &sig)
        .map_err(|_| Error::InvalidSignature("signature does not recover a public key".into()))?;
    Ok(address_of_public(&public))
}
