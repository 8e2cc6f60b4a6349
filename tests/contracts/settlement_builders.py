"""Builders for contract tests and the gas bench (bench/gas.py imports this module): signed
leaves, Merkle-sum trees (honest or deliberately corrupted), co-signed batch headers, all on the
shared encoding of rust_core.reference (ARCHITECTURE.md, "One encoding"). Depends on rust_core
and eth libraries only, never on the `node` package (which bench/node.py would shadow)."""
from __future__ import annotations

from dataclasses import dataclass, field

from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from rust_core import reference as ref

PERIOD_SECONDS = 900
CHALLENGE_WINDOW = 3600
RESPONSE_TIME = 1800
ADMIN_DELAY_S = 3600  # the test registry's admin transfer delay
GROUP_A = ref.group_id("group:sonnenweg")
GROUP_B = ref.group_id("group:mühlbach")
EMPTY = ref.EMPTY_NODE


def meter_key(label: str) -> bytes:
    return keccak(text=f"test-meter-key:{label}")


@dataclass(frozen=True)
class MeterSpec:
    """A meter point as the registry holds it, plus the private key that signs its readings."""

    label: str
    group: bytes
    kind: int = 2
    active_from: int = 1
    active_until: int = 2**64 - 1
    baseline_import: int = 0
    baseline_export: int = 0
    key: bytes = field(default=b"")

    @property
    def private_key(self) -> bytes:
        return self.key or meter_key(self.label)

    @property
    def meter_id(self) -> bytes:
        return ref.meter_id("dsmr", self.label)

    @property
    def address(self) -> str:
        return Account.from_key(self.private_key).address

    def register_args(self) -> tuple:
        return (self.meter_id, self.address, self.kind, self.group, self.active_from, self.active_until,
                self.baseline_import, self.baseline_export)


def make_leaf(domain, meter: MeterSpec, period: int, import_mwh: int, export_mwh: int, prev_period: int,
              prev_import: int, prev_export: int, *, timestamp: int | None = None,
              signer: bytes | None = None) -> ref.Leaf:
    ts = period * PERIOD_SECONDS + 300 if timestamp is None else timestamp
    reading = ref.Reading(meter.meter_id, period, ts, import_mwh, export_mwh)
    sig = ref.sign_reading(domain, reading, signer or meter.private_key)
    return ref.Leaf(reading, prev_period, prev_import, prev_export, sig)


def leaf_struct(leaf: ref.Leaf) -> tuple:
    r = leaf.reading
    sig = leaf.signature
    return (r.meter_id, r.period, r.timestamp, r.import_mwh, r.export_mwh, leaf.prev_period,
            leaf.prev_import_mwh, leaf.prev_export_mwh, sig[:32], sig[32:64], sig[64])


def node_struct(node) -> tuple:
    return (bytes(node[0]), int(node[1]), int(node[2]))


def inner_preimage(left, right) -> bytes:
    """What an inner node hashes: its children as committed, six full words (their sums need
    not add up, nor fit uint64: byte-identical to the uint64 encoding when they do)."""
    return encode(["bytes32", "uint256", "uint256", "bytes32", "uint256", "uint256"], [*left, *right])


def parent_hash(left, right) -> bytes:
    """Inner-node hash over the children as committed."""
    return keccak(inner_preimage(left, right))


def leaf_words(leaf: ref.Leaf, **wide) -> bytes:
    """A leaf's hashed encoding with some fields replaced by words of any width (e.g.
    import_mwh=2**64 + 5): what colluders could hash although no Leaf struct can carry it."""
    r, sig = leaf.reading, leaf.signature
    fields = dict(meter_id=r.meter_id, period=r.period, timestamp=r.timestamp, import_mwh=r.import_mwh,
                  export_mwh=r.export_mwh, prev_period=leaf.prev_period, prev_import_mwh=leaf.prev_import_mwh,
                  prev_export_mwh=leaf.prev_export_mwh, r=sig[:32], s=sig[32:64], v=sig[64])
    fields.update(wide)
    return encode(["bytes32"] + ["uint256"] * 7 + ["bytes32", "bytes32", "uint256"], list(fields.values()))


class SumTree:
    """A positional Merkle-sum tree over leaf-level nodes. Built honestly from leaves unless a
    test corrupts a node on purpose with `corrupt`, which recomputes only the hashes (and sums)
    above it from the nodes as committed, so the corrupted node is the one fault on its path."""

    def __init__(self, nodes: list, depth: int, leaves: list | None = None):
        self.leaves = leaves or []
        self.depth = depth
        level = list(nodes) + [EMPTY] * ((1 << depth) - len(nodes))
        self.levels = [level]
        while len(level) > 1:
            level = [self._parent(level[i], level[i + 1]) for i in range(0, len(level), 2)]
            self.levels.append(level)

    @staticmethod
    def _parent(left, right):
        h = parent_hash(left, right)
        return (h, left[1] + right[1], left[2] + right[2])

    @classmethod
    def from_leaves(cls, leaves: list[ref.Leaf], *, count: int | None = None) -> SumTree:
        n = count if count is not None else len(leaves)
        return cls([ref.leaf_node(lf) for lf in leaves], ref.tree_depth(n), leaves)

    @property
    def root(self):
        return self.levels[-1][0]

    def node(self, level: int, index: int):
        return self.levels[level][index]

    def proof(self, index: int, level: int = 0) -> list[tuple]:
        out = []
        for lvl in self.levels[level:-1]:
            out.append(node_struct(lvl[index ^ 1]))
            index >>= 1
        return out

    def pair_proof(self, index: int) -> list[tuple]:
        """Siblings of the adjacent leaves index and index + 1 as proveMissingPrevious takes them."""
        return ref.pair_proof(self, index)

    def corrupt(self, level: int, index: int, node) -> None:
        """Replace one node as committed and rehash every ancestor from the committed children."""
        self.levels[level][index] = node
        for lvl in range(level + 1, len(self.levels)):
            index >>= 1
            left, right = self.levels[lvl - 1][2 * index], self.levels[lvl - 1][2 * index + 1]
            self.levels[lvl][index] = self._parent(left, right)

    def header(self, period: int, group: bytes, count: int | None = None, *, epoch: int) -> ref.BatchHeader:
        r = self.root
        return ref.BatchHeader(period, group, bytes(r[0]), r[1], r[2],
                               len(self.leaves) if count is None else count, epoch)


def header_struct(h: ref.BatchHeader) -> tuple:
    return tuple(h)


def cosign(domain, header: ref.BatchHeader, private_keys: list[bytes]) -> list[bytes]:
    """Operator signatures over the header, sorted by signer address ascending."""
    pairs = sorted((Account.from_key(k).address.lower(), ref.sign_batch(domain, header, k)) for k in private_keys)
    return [sig for _, sig in pairs]
