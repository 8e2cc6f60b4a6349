//! Python values to core types. Wrong Python types raise TypeError; right types with wrong
//! lengths or ranges raise EncodingError (InvalidKey for keys); every message names the field.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyTuple};
use settlement_core::{BatchHeader, Leaf, Node, Reading};

use crate::errors::{EncodingError, InvalidKey};

/// Fixed-length bytes; `key` selects InvalidKey instead of EncodingError for a wrong length.
fn fixed<const N: usize>(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String, key: bool) -> PyResult<[u8; N]> {
    let bytes = obj
        .downcast::<PyBytes>()
        .map_err(|_| PyTypeError::new_err(format!("{} must be bytes, got {}", what(), type_name(obj))))?
        .as_bytes();
    bytes.try_into().map_err(|_| {
        let msg = format!("{} must be {N} bytes, got {}", what(), bytes.len());
        if key {
            InvalidKey::new_err(msg)
        } else {
            EncodingError::new_err(msg)
        }
    })
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

pub(crate) fn bytes32(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<[u8; 32]> {
    fixed(obj, what, false)
}

pub(crate) fn address(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<[u8; 20]> {
    fixed(obj, what, false)
}

pub(crate) fn private_key(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<[u8; 32]> {
    fixed(obj, what, true)
}

/// Any bytes (signatures are checked by the core so that a bad one is a per-item failure).
pub(crate) fn raw_bytes(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<Vec<u8>> {
    Ok(obj
        .downcast::<PyBytes>()
        .map_err(|_| PyTypeError::new_err(format!("{} must be bytes, got {}", what(), type_name(obj))))?
        .as_bytes()
        .to_vec())
}

fn uint(obj: &Bound<'_, PyAny>, bits: u32, what: &dyn Fn() -> String) -> PyResult<u64> {
    if !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!("{} must be an int, got {}", what(), type_name(obj))));
    }
    match obj.extract::<u64>() {
        Ok(v) if bits == 64 || v >> bits == 0 => Ok(v),
        _ => Err(EncodingError::new_err(format!("{} must fit in uint{bits}, got {}", what(), obj))),
    }
}

/// A tuple (or list, copied into a tuple) of exactly `len` items; callers read its fields in place
/// with `as_slice()`, without per-field reference counting.
fn tuple<'py>(
    obj: &Bound<'py, PyAny>,
    len: usize,
    shape: &str,
    what: &dyn Fn() -> String,
) -> PyResult<Bound<'py, PyTuple>> {
    let t = if let Ok(t) = obj.downcast::<PyTuple>() {
        t.clone()
    } else if let Ok(list) = obj.downcast::<PyList>() {
        list.to_tuple()
    } else {
        return Err(PyTypeError::new_err(format!("{} must be a tuple {shape}, got {}", what(), type_name(obj))));
    };
    if t.len() != len {
        return Err(EncodingError::new_err(format!("{} must have {len} fields {shape}, got {}", what(), t.len())));
    }
    Ok(t)
}

const READING_SHAPE: &str = "(meter_id, period, timestamp, import_mwh, export_mwh)";
const LEAF_SHAPE: &str = "(meter_id, period, timestamp, import_mwh, export_mwh, prev_period, \
prev_import_mwh, prev_export_mwh, signature)";
const NODE_SHAPE: &str = "(hash, import_sum, export_sum)";
const HEADER_SHAPE: &str = "(period, group_id, root, total_import_mwh, total_export_mwh, count, epoch)";

fn reading_fields(t: &[Bound<'_, PyAny>], what: &dyn Fn() -> String) -> PyResult<Reading> {
    let f = |name: &'static str| move || format!("{} {name}", what());
    Ok(Reading {
        meter_id: bytes32(&t[0], &f("meter_id"))?,
        period: uint(&t[1], 64, &f("period"))?,
        timestamp: uint(&t[2], 64, &f("timestamp"))?,
        import_mwh: uint(&t[3], 64, &f("import_mwh"))?,
        export_mwh: uint(&t[4], 64, &f("export_mwh"))?,
    })
}

pub(crate) fn reading(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<Reading> {
    reading_fields(tuple(obj, 5, READING_SHAPE, what)?.as_slice(), what)
}

pub(crate) fn leaf(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<Leaf> {
    let t = tuple(obj, 9, LEAF_SHAPE, what)?;
    let t = t.as_slice();
    let f = |name: &'static str| move || format!("{} {name}", what());
    Ok(Leaf {
        reading: reading_fields(t, what)?,
        prev_period: uint(&t[5], 64, &f("prev_period"))?,
        prev_import_mwh: uint(&t[6], 64, &f("prev_import_mwh"))?,
        prev_export_mwh: uint(&t[7], 64, &f("prev_export_mwh"))?,
        signature: fixed(&t[8], &f("signature"), false)?,
    })
}

pub(crate) fn node(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<Node> {
    let t = tuple(obj, 3, NODE_SHAPE, what)?;
    let t = t.as_slice();
    let f = |name: &'static str| move || format!("{} {name}", what());
    Ok(Node {
        hash: bytes32(&t[0], &f("hash"))?,
        import_sum: uint(&t[1], 64, &f("import_sum"))?,
        export_sum: uint(&t[2], 64, &f("export_sum"))?,
    })
}

pub(crate) fn header(obj: &Bound<'_, PyAny>) -> PyResult<BatchHeader> {
    let what = || "header".to_string();
    let t = tuple(obj, 7, HEADER_SHAPE, &what)?;
    let t = t.as_slice();
    Ok(BatchHeader {
        period: uint(&t[0], 64, &|| "header period".into())?,
        group_id: bytes32(&t[1], &|| "header group_id".into())?,
        root: bytes32(&t[2], &|| "header root".into())?,
        total_import_mwh: uint(&t[3], 64, &|| "header total_import_mwh".into())?,
        total_export_mwh: uint(&t[4], 64, &|| "header total_export_mwh".into())?,
        count: uint(&t[5], 32, &|| "header count".into())? as u32,
        epoch: uint(&t[6], 32, &|| "header epoch".into())? as u32,
    })
}

/// Converts every item of a list (or any iterable), naming a bad one by its index.
pub(crate) fn each<T>(
    items: &Bound<'_, PyAny>,
    noun: &str,
    convert: impl Fn(&Bound<'_, PyAny>, &dyn Fn() -> String) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    let mut out = Vec::with_capacity(items.len().unwrap_or(0));
    for (i, item) in items.try_iter()?.enumerate() {
        out.push(convert(&item?, &|| format!("{noun} {i}"))?);
    }
    Ok(out)
}

pub(crate) fn node_tuple<'py>(py: Python<'py>, n: &Node) -> (Bound<'py, PyBytes>, u64, u64) {
    (PyBytes::new(py, &n.hash), n.import_sum, n.export_sum)
}
