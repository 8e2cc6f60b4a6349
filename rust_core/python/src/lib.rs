//! `rust_core._native`: the thin PyO3 binding of `settlement-core`. Converts Python values at the
//! boundary, releases the GIL for the work, and maps core errors to the `rust_core` exceptions.

use pyo3::prelude::*;

mod convert;
mod errors;
mod functions;
mod tree;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    functions::register(m)?;
    m.add_class::<tree::PyMerkleSumTree>()?;
    Ok(())
}
