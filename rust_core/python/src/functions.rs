//! Module-level functions: hashing, EIP-712 digests, signing, and whole-batch sign/verify.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt};
use settlement_core as core;

use crate::convert::{self, node_tuple};
use crate::errors::{to_py, EncodingError};

type NodeTuple<'py> = (Bound<'py, PyBytes>, u64, u64);

#[pyfunction]
fn keccak256<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &core::keccak256(data))
}

#[pyfunction]
fn domain_separator<'py>(
    py: Python<'py>,
    chain_id: &Bound<'py, PyAny>,
    verifying_contract: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    if !chain_id.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err("chain_id must be an int"));
    }
    let word: [u8; 32] = chain_id
        .call_method1("to_bytes", (32, "big"))
        .and_then(|b| b.extract())
        .map_err(|_| EncodingError::new_err(format!("chain_id must fit in uint256, got {chain_id}")))?;
    let contract = convert::address(verifying_contract, &|| "verifying_contract".into())?;
    Ok(PyBytes::new(py, &core::domain_separator(&word, &contract)))
}

#[pyfunction]
fn reading_digest<'py>(
    py: Python<'py>,
    domain_sep: &Bound<'py, PyAny>,
    reading: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let domain = convert::bytes32(domain_sep, &|| "domain_sep".into())?;
    let reading = convert::reading(reading, &|| "reading".into())?;
    Ok(PyBytes::new(py, &core::reading_digest(&domain, &reading)))
}

#[pyfunction]
fn batch_digest<'py>(
    py: Python<'py>,
    domain_sep: &Bound<'py, PyAny>,
    header: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let domain = convert::bytes32(domain_sep, &|| "domain_sep".into())?;
    let header = convert::header(header)?;
    Ok(PyBytes::new(py, &core::batch_digest(&domain, &header)))
}

#[pyfunction]
fn sign_digest<'py>(
    py: Python<'py>,
    digest: &Bound<'py, PyAny>,
    private_key: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let digest = convert::bytes32(digest, &|| "digest".into())?;
    let key = convert::private_key(private_key, &|| "private key".into())?;
    let sig = py.allow_threads(|| core::sign_digest(&digest, &key)).map_err(to_py)?;
    Ok(PyBytes::new(py, &sig))
}

#[pyfunction]
fn recover_signer<'py>(
    py: Python<'py>,
    digest: &Bound<'py, PyAny>,
    signature: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let digest = convert::bytes32(digest, &|| "digest".into())?;
    let sig = convert::raw_bytes(signature, &|| "signature".into())?;
    let addr = py.allow_threads(|| core::recover_signer(&digest, &sig)).map_err(to_py)?;
    Ok(PyBytes::new(py, &addr))
}

#[pyfunction]
fn address_of<'py>(py: Python<'py>, private_key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let key = convert::private_key(private_key, &|| "private key".into())?;
    Ok(PyBytes::new(py, &core::address_of(&key).map_err(to_py)?))
}

#[pyfunction]
fn sign_readings<'py>(
    py: Python<'py>,
    domain_sep: &Bound<'py, PyAny>,
    readings: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let domain = convert::bytes32(domain_sep, &|| "domain_sep".into())?;
    let readings = convert::each(readings, "reading", convert::reading)?;
    let keys = convert::each(keys, "key", convert::private_key)?;
    let sigs = py.allow_threads(|| core::sign_readings(&domain, &readings, &keys)).map_err(to_py)?;
    Ok(sigs.iter().map(|s| PyBytes::new(py, s)).collect())
}

#[pyfunction]
fn verify_readings<'py>(
    py: Python<'py>,
    domain_sep: &Bound<'py, PyAny>,
    readings: &Bound<'py, PyAny>,
    signatures: &Bound<'py, PyAny>,
    signers: &Bound<'py, PyAny>,
) -> PyResult<Vec<(usize, String)>> {
    let domain = convert::bytes32(domain_sep, &|| "domain_sep".into())?;
    let readings = convert::each(readings, "reading", convert::reading)?;
    let signatures = convert::each(signatures, "signature", convert::raw_bytes)?;
    let signers = convert::each(signers, "signer", convert::address)?;
    let failures =
        py.allow_threads(|| core::verify_readings(&domain, &readings, &signatures, &signers)).map_err(to_py)?;
    Ok(failures.into_iter().map(|f| (f.index, f.reason)).collect())
}

#[pyfunction]
fn leaf_hash<'py>(py: Python<'py>, leaf: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let leaf = convert::leaf(leaf, &|| "leaf".into())?;
    Ok(PyBytes::new(py, &core::leaf_hash(&leaf)))
}

#[pyfunction]
fn leaf_node<'py>(py: Python<'py>, leaf: &Bound<'py, PyAny>) -> PyResult<NodeTuple<'py>> {
    let leaf = convert::leaf(leaf, &|| "leaf".into())?;
    Ok(node_tuple(py, &core::leaf_node(&leaf).map_err(to_py)?))
}

#[pyfunction]
fn parent_node<'py>(py: Python<'py>, left: &Bound<'py, PyAny>, right: &Bound<'py, PyAny>) -> PyResult<NodeTuple<'py>> {
    let left = convert::node(left, &|| "left".into())?;
    let right = convert::node(right, &|| "right".into())?;
    Ok(node_tuple(py, &left.parent(&right).map_err(to_py)?))
}

#[pyfunction]
fn verify_proof(
    py: Python<'_>,
    root: &Bound<'_, PyAny>,
    node: &Bound<'_, PyAny>,
    index: &Bound<'_, PyAny>,
    siblings: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let root = convert::node(root, &|| "root".into())?;
    let node = convert::node(node, &|| "node".into())?;
    let siblings = convert::each(siblings, "sibling", convert::node)?;
    if !index.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err("index must be an int"));
    }
    // A negative index or one beyond uint64 reaches no leaf: not a valid proof.
    let Ok(index) = index.extract::<u64>() else { return Ok(false) };
    Ok(py.allow_threads(|| core::verify_proof(&root, &node, index, &siblings)))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(keccak256, m)?)?;
    m.add_function(wrap_pyfunction!(domain_separator, m)?)?;
    m.add_function(wrap_pyfunction!(reading_digest, m)?)?;
    m.add_function(wrap_pyfunction!(batch_digest, m)?)?;
    m.add_function(wrap_pyfunction!(sign_digest, m)?)?;
    m.add_function(wrap_pyfunction!(recover_signer, m)?)?;
    m.add_function(wrap_pyfunction!(address_of, m)?)?;
    m.add_function(wrap_pyfunction!(sign_readings, m)?)?;
    m.add_function(wrap_pyfunction!(verify_readings, m)?)?;
    m.add_function(wrap_pyfunction!(leaf_hash, m)?)?;
    m.add_function(wrap_pyfunction!(leaf_node, m)?)?;
    m.add_function(wrap_pyfunction!(parent_node, m)?)?;
    m.add_function(wrap_pyfunction!(verify_proof, m)?)?;
    Ok(())
}
