"""Pure-Python reference of the shared encoding (ARCHITECTURE.md, "One encoding").

Built only from eth-abi, eth-utils and eth-account, so that it is an independent check on the
Rust core and the contracts: the test vectors in tests/vectors/encoding.json are generated from
this module and checked byte for byte by all three languages. Slow by design; never on a hot path.

It is also the one definition of the encoding's shared concepts that every package imports
(through ``rust_core.wire``): the meter id schemes ``PROTOCOLS``, ``meter_id`` /
``meter_label_id``, ``group_id``, the EIP-712 ``Domain``, ``U64_MAX`` and the energy unit
``wh_to_mwh``; and the ``BatchHeader`` value, which is the same here and in process.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import NamedTuple

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

DOMAIN_NAME = "EnergySettlement"
DOMAIN_VERSION = "1"
U64_MAX = 2**64 - 1
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

READING_TYPE = "Reading(bytes32 meterId,uint64 period,uint64 timestamp,uint64 importMwh,uint64 exportMwh)"
BATCH_TYPE = (
    "BatchHeader(uint64 period,bytes32 groupId,bytes32 root,uint64 totalImportMwh,"
    "uint64 totalExportMwh,uint32 count,uint32 epoch)"
)
READING_TYPEHASH = keccak(text=READING_TYPE)
BATCH_TYPEHASH = keccak(text=BATCH_TYPE)
EMPTY_NODE_HASH = b"\x00" * 32


PROTOCOLS = ("dsmr", "sml", "sunspec", "d0")  # the meter protocols, which are also the meter id schemes


def meter_id(scheme: str, identity: str) -> bytes:
    """bytes32 meter id: keccak256 of "scheme:identity" (scheme: one of PROTOCOLS)."""
    return keccak(text=f"{scheme}:{identity}")


def meter_label_id(label: str) -> bytes:
    """The meter id of a label "scheme:identity"; ValueError naming the label if it is not one."""
    scheme, sep, identity = label.partition(":")
    if not sep or scheme not in PROTOCOLS or not identity:
        raise ValueError(f"meter {label!r}: expected scheme:identity with scheme {', '.join(PROTOCOLS[:-1])} "
                         f"or {PROTOCOLS[-1]}")
    return meter_id(scheme, identity)


def group_id(name: str) -> bytes:
    """bytes32 balance group id: keccak256 of the group name."""
    return keccak(text=name)


def wh_to_mwh(wh: Decimal | str, what: str = "register") -> int:
    """floor(Wh * 1000): the encoding's integer milliwatt-hours. ValueError naming `what` for a
    text that is not a decimal number, a negative or non-finite value, or more than a uint64."""
    if not isinstance(wh, Decimal):
        try:
            wh = Decimal(wh)
        except (InvalidOperation, TypeError, ValueError):
            raise ValueError(f"{what}: {wh!r} is not a decimal number of Wh") from None
    if not wh.is_finite() or wh < 0:
        raise ValueError(f"{what} is {wh} Wh: a register cannot be negative or infinite")
    mwh = int((wh * 1000).to_integral_value(rounding=ROUND_FLOOR))
    if mwh > U64_MAX:
        raise ValueError(f"{what} is {wh} Wh: exceeds uint64 milliwatt-hours")
    return mwh


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain: chain id and the PeriodLedger's address (20 bytes, or its 0x text)."""

    chain_id: int
    verifying_contract: bytes

    def __post_init__(self) -> None:
        contract = self.verifying_contract
        if isinstance(contract, str):
            try:
                contract = bytes.fromhex(contract.removeprefix("0x"))
            except ValueError:
                contract = b""
        if not isinstance(contract, bytes) or len(contract) != 20:
            raise ValueError(f"verifying_contract {self.verifying_contract!r} is not a 20-byte address")
        object.__setattr__(self, "verifying_contract", bytes(contract))

    @classmethod
    def parse(cls, chain_id: int, verifying_contract: str) -> Domain:
        """From the 0x text of the address (what configs and deployment files hold)."""
        try:
            return cls(chain_id, bytes.fromhex(verifying_contract.removeprefix("0x")))
        except ValueError:
            raise ValueError(f"verifying_contract {verifying_contract!r} is not a 20-byte address") from None

    @property
    def address(self) -> str:
        """The verifying contract as a checksummed address."""
        return to_checksum_address(self.verifying_contract)

    def as_dict(self) -> dict:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.address,
        }

    def separator(self) -> bytes:
        type_hash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
        return keccak(
            encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [type_hash, keccak(text=DOMAIN_NAME), keccak(text=DOMAIN_VERSION), self.chain_id, self.address],
            )
        )


@dataclass(frozen=True)
class Reading:
    meter_id: bytes
    period: int
    timestamp: int
    import_mwh: int
    export_mwh: int

    def message(self) -> dict:
        return {
            "meterId": self.meter_id,
            "period": self.period,
            "timestamp": self.timestamp,
            "importMwh": self.import_mwh,
            "exportMwh": self.export_mwh,
        }

    def struct_hash(self) -> bytes:
        return keccak(
            encode(
                ["bytes32", "bytes32", "uint64", "uint64", "uint64", "uint64"],
                [READING_TYPEHASH, self.meter_id, self.period, self.timestamp, self.import_mwh, self.export_mwh],
            )
        )


_READING_TYPES = {
    "Reading": [
        {"name": "meterId", "type": "bytes32"},
        {"name": "period", "type": "uint64"},
        {"name": "timestamp", "type": "uint64"},
        {"name": "importMwh", "type": "uint64"},
        {"name": "exportMwh", "type": "uint64"},
    ]
}
_BATCH_TYPES = {
    "BatchHeader": [
        {"name": "period", "type": "uint64"},
        {"name": "groupId", "type": "bytes32"},
        {"name": "root", "type": "bytes32"},
        {"name": "totalImportMwh", "type": "uint64"},
        {"name": "totalExportMwh", "type": "uint64"},
        {"name": "count", "type": "uint32"},
        {"name": "epoch", "type": "uint32"},
    ]
}


def _typed(domain: Domain, types: dict, message: dict):
    return encode_typed_data(domain_data=domain.as_dict(), message_types=types, message_data=message)


def reading_digest(domain: Domain, reading: Reading) -> bytes:
    signable = _typed(domain, _READING_TYPES, reading.message())
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_reading(domain: Domain, reading: Reading, private_key: bytes) -> bytes:
    """65-byte r||s||v signature (v 27/28, low s) as eth-account produces it."""
    return bytes(Account.sign_typed_data(private_key, domain.as_dict(), _READING_TYPES, reading.message()).signature)


def recover_reading_signer(domain: Domain, reading: Reading, signature: bytes) -> str:
    return Account.recover_message(_typed(domain, _READING_TYPES, reading.message()), signature=signature)


class BatchHeader(NamedTuple):
    """ARCHITECTURE.md "Batch header": what settlement operators sign. Also the in-process value
    (rust_core.wire re-exports it): the tuple rust_core.batch_digest takes."""

    period: int
    group_id: bytes
    root: bytes
    total_import_mwh: int
    total_export_mwh: int
    count: int  # type: ignore[assignment]  # the header's field, shadowing tuple.count on purpose
    epoch: int  # the operator epoch whose set signs it (MeterRegistry.operatorEpoch)

    @classmethod
    def of_root(cls, period: int, group: bytes, root: Sequence, count: int, epoch: int) -> BatchHeader:
        """The header of a tree's root node (hash, import sum, export sum)."""
        root_hash, total_import, total_export = root
        return cls(period, group, root_hash, total_import, total_export, count, epoch)

    def content(self) -> tuple:
        """What the header says, whatever epoch signs it."""
        return tuple(self[:6])

    def content_hash(self) -> bytes:
        """The key of the ledger's `headerRejected`: a banned header is banned under every epoch."""
        return keccak(encode(["uint64", "bytes32", "bytes32", "uint64", "uint64", "uint32"], self.content()))

    def message(self) -> dict:
        return {
            "period": self.period,
            "groupId": self.group_id,
            "root": self.root,
            "totalImportMwh": self.total_import_mwh,
            "totalExportMwh": self.total_export_mwh,
            "count": self.count,
            "epoch": self.epoch,
        }


def batch_digest(domain: Domain, header: BatchHeader) -> bytes:
    signable = _typed(domain, _BATCH_TYPES, header.message())
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_batch(domain: Domain, header: BatchHeader, private_key: bytes) -> bytes:
    return bytes(Account.sign_typed_data(private_key, domain.as_dict(), _BATCH_TYPES, header.message()).signature)


@dataclass(frozen=True)
class Leaf:
    """A settled reading: the signed reading plus the register it counts from."""

    reading: Reading
    prev_period: int
    prev_import_mwh: int
    prev_export_mwh: int
    signature: bytes  # 65 bytes r||s||v

    def encoded(self) -> bytes:
        r, s, v = self.signature[:32], self.signature[32:64], self.signature[64]
        rd = self.reading
        return encode(
            ["bytes32", "uint64", "uint64", "uint64", "uint64", "uint64", "uint64", "uint64", "bytes32", "bytes32", "uint8"],
            [rd.meter_id, rd.period, rd.timestamp, rd.import_mwh, rd.export_mwh,
             self.prev_period, self.prev_import_mwh, self.prev_export_mwh, r, s, v],
        )

    def hash(self) -> bytes:
        return keccak(keccak(self.encoded()))

    def deltas(self) -> tuple[int, int]:
        d_imp = self.reading.import_mwh - self.prev_import_mwh
        d_exp = self.reading.export_mwh - self.prev_export_mwh
        if d_imp < 0 or d_exp < 0:
            raise ValueError(f"register ran backwards for meter 0x{self.reading.meter_id.hex()}")
        return d_imp, d_exp


Node = tuple[bytes, int, int]  # (hash, import sum, export sum)
EMPTY_NODE: Node = (EMPTY_NODE_HASH, 0, 0)


def leaf_node(leaf: Leaf) -> Node:
    return (leaf.hash(), *leaf.deltas())


def parent(left: Node, right: Node) -> Node:
    h = keccak(encode(["bytes32", "uint64", "uint64", "bytes32", "uint64", "uint64"], [*left, *right]))
    imp, exp = left[1] + right[1], left[2] + right[2]
    if imp > U64_MAX or exp > U64_MAX:
        raise OverflowError("sum exceeds uint64")
    return (h, imp, exp)


def tree_depth(count: int) -> int:
    if count < 1:
        raise ValueError("a batch holds at least one leaf")
    return (count - 1).bit_length()


def build_levels(leaves: list[Leaf]) -> list[list[Node]]:
    """All levels, leaves first, padded with EMPTY_NODE to 2**depth; leaves sorted by meter id."""
    ids = [lf.reading.meter_id for lf in leaves]
    if any(a >= b for a, b in zip(ids, ids[1:])):
        raise ValueError("leaves must be in strictly ascending meter id order")
    depth = tree_depth(len(leaves))
    level = [leaf_node(lf) for lf in leaves] + [EMPTY_NODE] * ((1 << depth) - len(leaves))
    levels = [level]
    while len(level) > 1:
        level = [parent(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def root(leaves: list[Leaf]) -> Node:
    return build_levels(leaves)[-1][0]


def proof(levels: list[list[Node]], index: int) -> list[Node]:
    """Sibling nodes from the leaf level up; the index gives each sibling's side."""
    out = []
    for level in levels[:-1]:
        out.append(level[index ^ 1])
        index >>= 1
    return out


def pair_proof(tree, index: int) -> list[Node]:
    """Siblings of the adjacent leaves index and index + 1 of `tree` (anything with
    `proof(i)`, sibling nodes from the leaf level up) as PeriodLedger.proveMissingPrevious takes
    them: below the level m where they meet, the first's then the second's; then the shared ones."""
    m = 1
    while (index >> (m - 1)) & 1:
        m += 1
    a, b = tree.proof(index), tree.proof(index + 1)
    return a[:m - 1] + b[:m - 1] + a[m:]


def verify_proof(root_node: Node, node: Node, index: int, siblings: list[Node]) -> bool:
    for sib in siblings:
        node = parent(sib, node) if index & 1 else parent(node, sib)
        index >>= 1
    return index == 0 and node == root_node
