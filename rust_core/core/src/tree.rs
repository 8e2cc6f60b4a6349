//! Merkle-sum trees over leaves in strictly ascending meter id order (ARCHITECTURE.md).

use rayon::prelude::*;

use crate::abi::Words;
use crate::batch::hex;
use crate::encoding::{leaf_hash, Leaf};
use crate::keccak::keccak256;
use crate::{Error, Hash};

/// Below this many nodes a level is hashed on one thread (rayon's overhead would dominate).
const PARALLEL_MIN: usize = 2048;

/// A tree node: hash plus the import and export sums of the leaves below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Node {
    /// Leaf hash or `keccak256(abi.encode(L.hash, L.importSum, L.exportSum, R.hash, ...))`.
    pub hash: Hash,
    /// Sum of import deltas in mWh.
    pub import_sum: u64,
    /// Sum of export deltas in mWh.
    pub export_sum: u64,
}

impl Node {
    /// The padding node `(0x00…00, 0, 0)`.
    pub const EMPTY: Node = Node { hash: [0u8; 32], import_sum: 0, export_sum: 0 };

    /// The parent of `self` (left) and `right`; its sums must fit in `uint64`.
    pub fn parent(&self, right: &Node) -> Result<Node, Error> {
        let sum = |a: u64, b: u64, what: &str| {
            a.checked_add(b).ok_or_else(|| Error::SumOverflow(format!("{what} sum {a} + {b} exceeds uint64")))
        };
        let import_sum = sum(self.import_sum, right.import_sum, "import")?;
        let export_sum = sum(self.export_sum, right.export_sum, "export")?;
        let hash = keccak256(
            &Words::<192>::new()
                .bytes32(&self.hash)
                .uint(self.import_sum)
                .uint(self.export_sum)
                .bytes32(&right.hash)
                .uint(right.import_sum)
                .uint(right.export_sum)
                .finish(),
        );
        Ok(Node { hash, import_sum, export_sum })
    }
}

/// A leaf's node: its hash and the deltas of its registers; a register that ran backwards is an error.
pub fn leaf_node(leaf: &Leaf) -> Result<Node, Error> {
    let rd = &leaf.reading;
    let delta = |now: u64, prev: u64, what: &str| {
        now.checked_sub(prev).ok_or_else(|| {
            Error::RegisterRegression(format!(
                "meter 0x{}: {what} register ran backwards from {prev} to {now} mWh",
                hex(&rd.meter_id)
            ))
        })
    };
    Ok(Node {
        hash: leaf_hash(leaf),
        import_sum: delta(rd.import_mwh, leaf.prev_import_mwh, "import")?,
        export_sum: delta(rd.export_mwh, leaf.prev_export_mwh, "export")?,
    })
}

/// All levels of a Merkle-sum tree, leaves first, padded with [`Node::EMPTY`] to `2^depth`.
#[derive(Debug, Clone)]
pub struct MerkleSumTree {
    levels: Vec<Vec<Node>>,
    count: usize,
}

/// The next level up. Only the first `real` nodes come from leaves; the rest is padding, whose
/// parents are all the same node (`pad.parent(pad)`), so they are hashed once, not per pair.
fn parents(level: &[Node], real: usize, pad: &Node) -> Result<Vec<Node>, Error> {
    let pair = |p: &[Node]| p[0].parent(&p[1]);
    let real_pairs = &level[..real.div_ceil(2) * 2];
    let mut next: Vec<Node> = if real_pairs.len() >= PARALLEL_MIN {
        real_pairs.par_chunks(2).with_min_len(PARALLEL_MIN / 4).map(pair).collect::<Result<_, _>>()?
    } else {
        real_pairs.chunks(2).map(pair).collect::<Result<_, _>>()?
    };
    next.resize(level.len() / 2, pad.parent(pad)?);
    Ok(next)
}

impl MerkleSumTree {
    /// Builds the tree; leaves must be non-empty and in strictly ascending meter id order.
    pub fn build(leaves: &[Leaf]) -> Result<Self, Error> {
        if let Some(i) = leaves.windows(2).position(|w| w[0].reading.meter_id >= w[1].reading.meter_id) {
            return Err(Error::Encoding(format!(
                "leaves out of order: leaf {} (meter 0x{}) does not sort strictly after leaf {} (meter 0x{})",
                i + 1,
                hex(&leaves[i + 1].reading.meter_id),
                i,
                hex(&leaves[i].reading.meter_id)
            )));
        }
        Self::build_any_order(leaves)
    }

    /// Builds the tree over leaves in the order given, without the order check: for rebuilding a
    /// peer's batch whose leaves are out of order, to prove exactly that.
    pub fn build_any_order(leaves: &[Leaf]) -> Result<Self, Error> {
        if leaves.is_empty() {
            return Err(Error::Encoding("a batch holds at least one leaf".into()));
        }
        if leaves.len() > u32::MAX as usize {
            return Err(Error::Encoding(format!("{} leaves do not fit a uint32 count", leaves.len())));
        }
        let depth = depth_for(leaves.len());
        let mut level: Vec<Node> = leaves
            .par_iter()
            .with_min_len(PARALLEL_MIN / 4)
            .enumerate()
            .map(|(i, leaf)| {
                leaf_node(leaf).map_err(|e| match e {
                    Error::RegisterRegression(msg) => Error::RegisterRegression(format!("leaf {i}, {msg}")),
                    other => other,
                })
            })
            .collect::<Result<_, _>>()?;
        level.resize(1 << depth, Node::EMPTY);
        let mut levels = Vec::with_capacity(depth as usize + 1);
        let (mut real, mut pad) = (leaves.len(), Node::EMPTY);
        while level.len() > 1 {
            let next = parents(&level, real, &pad)?;
            pad = pad.parent(&pad)?;
            real = real.div_ceil(2);
            levels.push(level);
            level = next;
        }
        levels.push(level);
        Ok(Self { levels, count: leaves.len() })
    }

    /// The root node: its hash and the batch totals.
    pub fn root(&self) -> Node {
        self.levels[self.levels.len() - 1][0]
    }

    /// Number of leaves (without padding).
    pub fn count(&self) -> usize {
        self.count
    }

    /// `ceil(log2(count))`; 0 for one leaf.
    pub fn depth(&self) -> u32 {
        (self.levels.len() - 1) as u32
    }

    fn check_leaf(&self, index: usize) -> Result<(), Error> {
        if index < self.count {
            Ok(())
        } else {
            Err(Error::IndexOutOfRange(format!("leaf index {index} out of range for {} leaves", self.count)))
        }
    }

    /// The node of leaf `index`.
    pub fn leaf_node(&self, index: usize) -> Result<Node, Error> {
        self.check_leaf(index)?;
        Ok(self.levels[0][index])
    }

    /// Any node, padding included: `level` 0 is the leaves, `depth` the root.
    pub fn node(&self, level: usize, index: usize) -> Result<Node, Error> {
        let nodes = self
            .levels
            .get(level)
            .ok_or_else(|| Error::IndexOutOfRange(format!("level {level} out of range for depth {}", self.depth())))?;
        nodes.get(index).copied().ok_or_else(|| {
            Error::IndexOutOfRange(format!(
                "node index {index} out of range for {} nodes at level {level}",
                nodes.len()
            ))
        })
    }

    /// Sibling nodes of leaf `index` from the leaf level up.
    pub fn proof(&self, index: usize) -> Result<Vec<Node>, Error> {
        self.check_leaf(index)?;
        let last = self.levels.len() - 1;
        Ok(self.levels[..last].iter().enumerate().map(|(lvl, nodes)| nodes[(index >> lvl) ^ 1]).collect())
    }
}

/// `ceil(log2(count))` for `count >= 1`.
fn depth_for(count: usize) -> u32 {
    usize::BITS - (count - 1).leading_zeros()
}

/// Whether `siblings` lead from `node` at leaf `index` to `root` (bit i of index set: sibling i on
/// the left). An index beyond the proof's width or a sum overflowing `uint64` is not a valid proof.
pub fn verify_proof(root: &Node, node: &Node, index: u64, siblings: &[Node]) -> bool {
    let mut current = *node;
    let mut index = index;
    for sibling in siblings {
        let next = if index & 1 == 1 { sibling.parent(&current) } else { current.parent(sibling) };
        match next {
            Ok(n) => current = n,
            Err(_) => return false,
        }
        index >>= 1;
    }
    index == 0 && current == *root
}
