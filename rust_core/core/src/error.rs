use thiserror::Error as ThisError;

/// Every way a core operation can refuse its input. The message names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
pub enum Error {
    /// A private key that is not a valid secp256k1 scalar (zero, >= n, wrong length).
    #[error("{0}")]
    InvalidKey(String),
    /// A signature that is malformed (length, v, high s, r/s out of range) or does not recover.
    #[error("{0}")]
    InvalidSignature(String),
    /// Input that does not fit the shared encoding: lengths, ranges, leaf order, empty batch.
    #[error("{0}")]
    Encoding(String),
    /// A Merkle-sum that does not fit in `uint64`.
    #[error("{0}")]
    SumOverflow(String),
    /// A leaf whose register is below its previous register (negative delta).
    #[error("{0}")]
    RegisterRegression(String),
    /// A leaf, level or node index outside the tree.
    #[error("{0}")]
    IndexOutOfRange(String),
}
