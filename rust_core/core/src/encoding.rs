//! The shared encoding (ARCHITECTURE.md, "One encoding"): EIP-712 domain, reading and batch
//! header digests, and the double-hashed leaf.

use std::sync::LazyLock;

use crate::abi::Words;
use crate::keccak::keccak256;
use crate::{Address, Hash, Signature};

/// EIP-712 domain name.
pub const DOMAIN_NAME: &str = "EnergySettlement";
/// EIP-712 domain version.
pub const DOMAIN_VERSION: &str = "1";
/// EIP-712 domain type.
pub const DOMAIN_TYPE: &str = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
/// EIP-712 type of a meter reading.
pub const READING_TYPE: &str =
    "Reading(bytes32 meterId,uint64 period,uint64 timestamp,uint64 importMwh,uint64 exportMwh)";
/// EIP-712 type of a batch header.
pub const BATCH_TYPE: &str = "BatchHeader(uint64 period,bytes32 groupId,bytes32 root,uint64 totalImportMwh,\
uint64 totalExportMwh,uint32 count,uint32 epoch)";

static DOMAIN_TYPEHASH: LazyLock<Hash> = LazyLock::new(|| keccak256(DOMAIN_TYPE.as_bytes()));
/// keccak256 of [`READING_TYPE`].
pub static READING_TYPEHASH: LazyLock<Hash> = LazyLock::new(|| keccak256(READING_TYPE.as_bytes()));
/// keccak256 of [`BATCH_TYPE`].
pub static BATCH_TYPEHASH: LazyLock<Hash> = LazyLock::new(|| keccak256(BATCH_TYPE.as_bytes()));

/// A meter reading as the meter's key signs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// keccak256 of "scheme:identity".
    pub meter_id: Hash,
    /// floor(timestamp / periodSeconds).
    pub period: u64,
    /// Unix seconds of the reading.
    pub timestamp: u64,
    /// Import register in mWh.
    pub import_mwh: u64,
    /// Export register in mWh.
    pub export_mwh: u64,
}

impl Reading {
    /// EIP-712 hashStruct of the reading.
    pub fn struct_hash(&self) -> Hash {
        keccak256(
            &Words::<192>::new()
                .bytes32(&READING_TYPEHASH)
                .bytes32(&self.meter_id)
                .uint(self.period)
                .uint(self.timestamp)
                .uint(self.import_mwh)
                .uint(self.export_mwh)
                .finish(),
        )
    }
}

/// A batch header as settlement operators co-sign it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Settlement period.
    pub period: u64,
    /// keccak256 of the balance group name.
    pub group_id: Hash,
    /// Hash of the Merkle-sum tree's root node.
    pub root: Hash,
    /// Root import sum in mWh.
    pub total_import_mwh: u64,
    /// Root export sum in mWh.
    pub total_export_mwh: u64,
    /// Number of leaves.
    pub count: u32,
    /// The operator epoch whose set signs the header (the registry's `operatorEpoch`).
    pub epoch: u32,
}

impl BatchHeader {
    /// EIP-712 hashStruct of the header.
    pub fn struct_hash(&self) -> Hash {
        keccak256(
            &Words::<256>::new()
                .bytes32(&BATCH_TYPEHASH)
                .uint(self.period)
                .bytes32(&self.group_id)
                .bytes32(&self.root)
                .uint(self.total_import_mwh)
                .uint(self.total_export_mwh)
                .uint(u64::from(self.count))
                .uint(u64::from(self.epoch))
                .finish(),
        )
    }
}

/// A settled reading: the signed reading plus the register it counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// The signed reading.
    pub reading: Reading,
    /// Period of the previous register (or registry `activeFrom - 1`).
    pub prev_period: u64,
    /// Previous import register in mWh.
    pub prev_import_mwh: u64,
    /// Previous export register in mWh.
    pub prev_export_mwh: u64,
    /// The meter's 65-byte `r‖s‖v` signature over the reading.
    pub signature: Signature,
}

impl Leaf {
    /// `abi.encode(meterId, period, timestamp, importMwh, exportMwh, prevPeriod, prevImportMwh,
    /// prevExportMwh, r, s, v)`.
    pub fn encoded(&self) -> [u8; 352] {
        let rd = &self.reading;
        let sig = &self.signature;
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&sig[..32]);
        s.copy_from_slice(&sig[32..64]);
        Words::<352>::new()
            .bytes32(&rd.meter_id)
            .uint(rd.period)
            .uint(rd.timestamp)
            .uint(rd.import_mwh)
            .uint(rd.export_mwh)
            .uint(self.prev_period)
            .uint(self.prev_import_mwh)
            .uint(self.prev_export_mwh)
            .bytes32(&r)
            .bytes32(&s)
            .uint(u64::from(sig[64]))
            .finish()
    }
}

/// EIP-712 domain separator for `chain_id` (a big-endian uint256 word) and the PeriodLedger.
pub fn domain_separator(chain_id: &[u8; 32], verifying_contract: &Address) -> Hash {
    keccak256(
        &Words::<160>::new()
            .bytes32(&DOMAIN_TYPEHASH)
            .bytes32(&keccak256(DOMAIN_NAME.as_bytes()))
            .bytes32(&keccak256(DOMAIN_VERSION.as_bytes()))
            .bytes32(chain_id)
            .address(verifying_contract)
            .finish(),
    )
}

fn typed_data_digest(domain_separator: &Hash, struct_hash: &Hash) -> Hash {
    let mut buf = [0u8; 66];
    buf[0] = 0x19;
    buf[1] = 0x01;
    buf[2..34].copy_from_slice(domain_separator);
    buf[34..].copy_from_slice(struct_hash);
    keccak256(&buf)
}

/// EIP-712 digest of a reading: what the meter key signs.
pub fn reading_digest(domain_separator: &Hash, reading: &Reading) -> Hash {
    typed_data_digest(domain_separator, &reading.struct_hash())
}

/// EIP-712 digest of a batch header: what settlement operators sign.
pub fn batch_digest(domain_separator: &Hash, header: &BatchHeader) -> Hash {
    typed_data_digest(domain_separator, &header.struct_hash())
}

/// `keccak256(bytes.concat(keccak256(abi.encode(leaf fields))))`.
pub fn leaf_hash(leaf: &Leaf) -> Hash {
    keccak256(&keccak256(&leaf.encoded()))
}
