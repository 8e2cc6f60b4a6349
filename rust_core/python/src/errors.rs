//! The exception hierarchy (`CoreError` is a `ValueError`) and the mapping from core errors.

use pyo3::create_exception;
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use settlement_core::Error;

create_exception!(rust_core, CoreError, PyValueError, "Base of every rust_core error (a ValueError).");
create_exception!(
    rust_core,
    InvalidKey,
    CoreError,
    "A private key that is not a valid secp256k1 scalar or not 32 bytes."
);
create_exception!(rust_core, InvalidSignature, CoreError, "A malformed or unrecoverable signature.");
create_exception!(
    rust_core,
    EncodingError,
    CoreError,
    "Input that does not fit the shared encoding (lengths, ranges, leaf order)."
);
create_exception!(rust_core, SumOverflow, CoreError, "A Merkle-sum that exceeds uint64.");
create_exception!(rust_core, RegisterRegression, CoreError, "A leaf whose register ran backwards (negative delta).");

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CoreError", py.get_type::<CoreError>())?;
    m.add("InvalidKey", py.get_type::<InvalidKey>())?;
    m.add("InvalidSignature", py.get_type::<InvalidSignature>())?;
    m.add("EncodingError", py.get_type::<EncodingError>())?;
    m.add("SumOverflow", py.get_type::<SumOverflow>())?;
    m.add("RegisterRegression", py.get_type::<RegisterRegression>())?;
    Ok(())
}

/// The Python exception for a core error.
pub(crate) fn to_py(error: Error) -> PyErr {
    match error {
        Error::InvalidKey(m) => InvalidKey::new_err(m),
        Error::InvalidSignature(m) => InvalidSignature::new_err(m),
        Error::Encoding(m) => EncodingError::new_err(m),
        Error::SumOverflow(m) => SumOverflow::new_err(m),
        Error::RegisterRegression(m) => RegisterRegression::new_err(m),
        Error::IndexOutOfRange(m) => PyIndexError::new_err(m),
    }
}
