//! `MerkleSumTree`: built once from a list of leaf tuples with the GIL released; read-only after.

use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use settlement_core::MerkleSumTree;

use crate::convert::{self, node_tuple};
use crate::errors::to_py;

type NodeTuple<'py> = (Bound<'py, PyBytes>, u64, u64);

#[pyclass(frozen, module = "rust_core", name = "MerkleSumTree")]
pub(crate) struct PyMerkleSumTree {
    inner: MerkleSumTree,
}

fn position(value: i64, what: &str) -> PyResult<usize> {
    usize::try_from(value).map_err(|_| PyIndexError::new_err(format!("{what} {value} out of range")))
}

#[pymethods]
impl PyMerkleSumTree {
    #[new]
    #[pyo3(signature = (leaves, *, check_order = true))]
    fn new(py: Python<'_>, leaves: &Bound<'_, PyAny>, check_order: bool) -> PyResult<Self> {
        let leaves = convert::each(leaves, "leaf", convert::leaf)?;
        let build = if check_order { MerkleSumTree::build } else { MerkleSumTree::build_any_order };
        let inner = py.allow_threads(|| build(&leaves)).map_err(to_py)?;
        Ok(Self { inner })
    }

    #[getter]
    fn root<'py>(&self, py: Python<'py>) -> NodeTuple<'py> {
        node_tuple(py, &self.inner.root())
    }

    #[getter]
    fn count(&self) -> usize {
        self.inner.count()
    }

    #[getter]
    fn depth(&self) -> u32 {
        self.inner.depth()
    }

    fn proof<'py>(&self, py: Python<'py>, index: i64) -> PyResult<Vec<NodeTuple<'py>>> {
        let proof = self.inner.proof(position(index, "leaf index")?).map_err(to_py)?;
        Ok(proof.iter().map(|n| node_tuple(py, n)).collect())
    }

    fn leaf_node<'py>(&self, py: Python<'py>, index: i64) -> PyResult<NodeTuple<'py>> {
        let node = self.inner.leaf_node(position(index, "leaf index")?).map_err(to_py)?;
        Ok(node_tuple(py, &node))
    }

    fn node<'py>(&self, py: Python<'py>, level: i64, index: i64) -> PyResult<NodeTuple<'py>> {
        let node = self.inner.node(position(level, "level")?, position(index, "node index")?).map_err(to_py)?;
        Ok(node_tuple(py, &node))
    }

    fn __len__(&self) -> usize {
        self.inner.count()
    }

    fn __repr__(&self) -> String {
        let root = self.inner.root();
        let hash: String = root.hash.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "MerkleSumTree(count={}, depth={}, root=0x{hash}, import={}, export={})",
            self.inner.count(),
            self.inner.depth(),
            root.import_sum,
            root.export_sum
        )
    }
}
