//! Whole-batch signing and verification of readings, spread over cores with rayon.

use rayon::prelude::*;

use crate::encoding::{reading_digest, Reading};
use crate::signing::{recover_signer, sign_digest};
use crate::{Address, Error, Hash, Signature};

/// Work items per rayon task: a recovery costs ~45 µs, so small chunks still amortise scheduling.
const MIN_CHUNK: usize = 32;

/// A reading that failed verification: its position in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Index into the batch.
    pub index: usize,
    /// What was wrong, e.g. a malformed signature or the recovered signer.
    pub reason: String,
}

fn same_length(what: &str, got: usize, readings: usize) -> Result<(), Error> {
    if got == readings {
        Ok(())
    } else {
        Err(Error::Encoding(format!("{readings} readings but {got} {what}")))
    }
}

/// Signs every reading with the key at the same index.
pub fn sign_readings(domain: &Hash, readings: &[Reading], keys: &[[u8; 32]]) -> Result<Vec<Signature>, Error> {
    same_length("keys", keys.len(), readings.len())?;
    readings
        .par_iter()
        .zip(keys.par_iter())
        .with_min_len(MIN_CHUNK)
        .enumerate()
        .map(|(i, (reading, key))| {
            sign_digest(&reading_digest(domain, reading), key).map_err(|e| match e {
                Error::InvalidKey(msg) => Error::InvalidKey(format!("key {i}: {msg}")),
                other => other,
            })
        })
        .collect()
}

/// Checks every reading's signature against the signer registered for it (same index).
/// Returns one [`Failure`] per bad reading, in index order; empty means all are good.
pub fn verify_readings<S: AsRef<[u8]> + Sync>(
    domain: &Hash,
    readings: &[Reading],
    signatures: &[S],
    signers: &[Address],
) -> Result<Vec<Failure>, Error> {
    same_length("signatures", signatures.len(), readings.len())?;
    same_length("signers", signers.len(), readings.len())?;
    Ok(readings
        .par_iter()
        .zip(signatures.par_iter())
        .zip(signers.par_iter())
        .with_min_len(MIN_CHUNK)
        .enumerate()
        .filter_map(|(index, ((reading, signature), signer))| {
            let reason = match recover_signer(&reading_digest(domain, reading), signature.as_ref()) {
                Ok(recovered) if &recovered == signer => return None,
                Ok(recovered) => {
                    format!("signed by 0x{}, not by the registered key 0x{}", hex(&recovered), hex(signer))
                }
                Err(e) => e.to_string(),
            };
            Some(Failure { index, reason })
        })
        .collect())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
