"""The node's view of the chain through web3.py: the MeterRegistry (meters, operators,
quorum), the PeriodLedger (batches, events, fraud proofs) and transactions signed by the
operator's Signer (node.signer). ABIs come with the package (node.abis)."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import requests
from eth_utils import event_abi_to_log_topic
from pydantic import BaseModel, ConfigDict, Field
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from node.abis import abi, contract_type  # noqa: F401  (contract_type: build-manifest bytecode, for tests)
from node.signer import LocalKeySigner, Signer
from rust_core.wire import BatchHeader, Register, SumNode

log = logging.getLogger(__name__)
# How long a nonce must stay taken without our receipt before the transaction counts as replaced
# (a reorganisation can re-include it before geth has indexed its receipt again).
NONCE_TAKEN_S = 10.0

STATUS_NONE, STATUS_PENDING, STATUS_FINAL, STATUS_REJECTED = 0, 1, 2, 3


class ChainError(RuntimeError):
    """A transaction the chain refused (the message carries the revert reason)."""


@dataclass(frozen=True)
class Meter:
    key: bytes
    kind: int
    group_id: bytes
    active_from: int
    active_until: int
    baseline_import: int
    baseline_export: int
    key_changes: tuple[tuple[int, bytes], ...] = ()  # (from period, key) in ascending order

    def key_at(self, period: int) -> bytes:
        """The key that signs the meter's readings of `period` (MeterRegistry.keyAt)."""
        return key_at(self.key, self.key_changes, period)

    @property
    def baseline(self) -> Register:
        """What the meter's first leaf counts from: its registers at registration."""
        return Register(self.active_from - 1, self.baseline_import, self.baseline_export)


@dataclass(frozen=True)
class ChainBatch:
    root: bytes
    total_import: int
    total_export: int
    count: int
    submitted_at: int
    status: int

    @property
    def root_node(self) -> SumNode:
        return SumNode(self.root, self.total_import, self.total_export)


@dataclass(frozen=True)
class OperatorSet:
    """The settlement operators (ascending), their quorum and the epoch they sign under, as of one block."""

    epoch: int
    operators: list[bytes]
    quorum: int


class ChainOptions(BaseModel):
    """How the node uses a real chain: the [chain] table of node.toml (defaults suit anvil)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    confirmations: int = Field(default=0, ge=0)  # blocks on top before a batch, finalization or roll-up is acted on
    tx_type: Literal[0, 2] = 2  # 2: EIP-1559 fees; 0: legacy gas price (chains without London)
    priority_fee_wei: int | None = Field(default=None, ge=0)  # the tip (type 2) or gas price (type 0); absent: ask the node
    receipt_timeout_s: float = Field(default=60.0, gt=0)  # then the transaction stays in flight, settled on the next send


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    gas_used: int


class Chain:
    def __init__(self, rpc_url: str, registry: str, ledger: str, signer: Signer | bytes,
                 options: ChainOptions | None = None, *, chain_id: int | None = None, first_block: int = 0) -> None:
        """`signer`: the operator's Signer, or a raw private key (tests, read-only tools).
        `chain_id`: the deployment's chain, checked here; `first_block`: the deployment's first
        block, where event scans start at the earliest."""
        # Reads are retried while the RPC is away (a validator restarting); the node's loop
        # retries everything else on its next tick.
        retry = ExceptionRetryConfiguration(errors=(ConnectionError, requests.ConnectionError, requests.Timeout),
                                            retries=3, backoff_factor=0.5)
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}, exception_retry_configuration=retry))
        # Proof-of-authority chains (Clique, IBFT) carry the sealers' signatures in extraData.
        self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self.options, self.first_block = options or ChainOptions(), first_block
        self._inflight: tuple[bytes, bytes] | None = None  # (tx hash, signed raw tx) not yet confirmed
        if chain_id is not None:
            actual = self.w3.eth.chain_id
            if actual != chain_id:
                raise ChainError(f"{rpc_url} serves chain id {actual}, but the deployment is on chain id "
                                 f"{chain_id}: point rpc_url at a node of the deployment's chain")
        self.registry = self.w3.eth.contract(
            address=Web3.to_checksum_address(registry), abi=abi("MeterRegistry")
        )
        self.ledger = self.w3.eth.contract(
            address=Web3.to_checksum_address(ledger), abi=abi("PeriodLedger")
        )
        self.signer: Signer = LocalKeySigner(signer) if isinstance(signer, bytes) else signer
        self.address = bytes.fromhex(self.signer.address[2:])
        self._tx_lock = threading.Lock()
        self._period_seconds: int | None = None
        self._window: int | None = None
        self._domain: bytes | None = None

    # -- ledger configuration (immutable) ------------------------------------------------------
    @property
    def period_seconds(self) -> int:
        if self._period_seconds is None:
            self._period_seconds = self.ledger.functions.periodSeconds().call()
        return self._period_seconds

    @property
    def challenge_window(self) -> int:
        if self._window is None:
            self._window = self.ledger.functions.challengeWindow().call()
        return self._window

    @property
    def domain_separator(self) -> bytes:
        if self._domain is None:
            self._domain = bytes(self.ledger.functions.domainSeparator().call())
        return self._domain

    @property
    def deployment_key(self) -> str:
        """Names this deployment: its domain separator (chain id and ledger address) and the hash
        of its first block, since a fresh devnet deploys at the same address again."""
        first = self.w3.eth.get_block(self.first_block)["hash"]
        return self.domain_separator.hex()[:16] + bytes(first).hex()[:16]

    # -- reads -----------------------------------------------------------------------------
    def block_number(self) -> int:
        """The newest block buried `confirmations` deep: events and state up to it are acted on."""
        return max(self.w3.eth.block_number - self.options.confirmations, 0)

    def _at(self) -> int | str:
        return self.block_number() if self.options.confirmations else "latest"

    def latest_timestamp(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def operator_set(self) -> OperatorSet:
        epoch, members, quorum = self.registry.functions.operatorSet().call()
        return OperatorSet(epoch, sorted(bytes.fromhex(a[2:]) for a in members), quorum)

    def get_batch(self, period: int, group_id: bytes) -> ChainBatch:
        r = self.ledger.functions.getBatch(period, group_id).call(block_identifier=self._at())
        return ChainBatch(bytes(r[0]), r[1], r[2], r[3], r[4], r[5])

    def header_banned(self, header: BatchHeader) -> bool:
        """Whether the ledger refuses this header for good (a fraud proof rejected it, under any
        epoch); a batch rejected only because its leaves were not revealed in time is not banned."""
        return self.ledger.functions.headerRejected(header.content_hash()).call(block_identifier=self._at())

    def last_final_period(self, group_id: bytes) -> int:
        return self.ledger.functions.lastFinalPeriod(group_id).call(block_identifier=self._at())

    def _event_logs(self, contract, names: tuple[str, ...], from_block: int, to_block: int) -> list:
        """The contract's logs of the named events in the block range (inclusive, not before the
        deployment), decoded, in chain order: one eth_getLogs request for all of them."""
        from_block = max(from_block, self.first_block)
        if from_block > to_block:
            return []
        events = {"0x" + event_abi_to_log_topic(ev.abi).hex(): ev
                  for ev in (getattr(contract.events, n)() for n in names)}
        raw = self.w3.eth.get_logs({"address": contract.address, "fromBlock": hex(from_block), "toBlock": hex(to_block),
                                    "topics": [list(events)]})
        return [events["0x" + bytes(log["topics"][0]).hex()].process_log(log) for log in raw]

    def registry_changes(self, from_block: int, to_block: int) -> list[tuple[str, bytes, Any]]:
        """The registry's meter changes in the block range (inclusive), in chain order, as
        (event, meter id, what): ("MeterRegistered", meter, Meter), ("MeterKeyRotated", meter,
        (from period, key, whether it replaces the meter's last change, which had not taken
        effect)), ("MeterDecommissioned", meter, last period)."""
        out: list[tuple[str, bytes, Any]] = []
        for e in self._event_logs(self.registry, ("MeterRegistered", "MeterKeyRotated", "MeterDecommissioned"),
                                  from_block, to_block):
            a = e.args
            if e.event == "MeterRegistered":
                what: Any = Meter(bytes.fromhex(a.key[2:]), a.kind, bytes(a.groupId), a.activeFrom, a.activeUntil,
                                  a.baselineImportMwh, a.baselineExportMwh)
            elif e.event == "MeterKeyRotated":
                what = (a.fromPeriod, bytes.fromhex(a.key[2:]), a.replacesPending)
            else:
                what = a.lastPeriod
            out.append((e.event, bytes(a.meterId), what))
        return out

    def ledger_events(self, from_block: int, to_block: int) -> list[tuple[str, dict, int]]:
        """(event name, args, block) of BatchSubmitted/Finalized/Rejected, in chain order."""
        return [(e.event, dict(e.args), e.blockNumber) for e in self._event_logs(
            self.ledger, ("BatchSubmitted", "BatchFinalized", "BatchRejected"), from_block, to_block)]

    # -- transactions ----------------------------------------------------------------------
    def _send(self, fn) -> TxResult:
        # Estimated against the pending block: with instant mining the latest block can be
        # minutes old, and the ledger's time checks must see the current time.
        with self._tx_lock:
            if self._inflight is not None:  # an earlier send timed out: settle it first (one nonce at a time)
                self._confirm(*self._inflight)
            try:
                gas = fn.estimate_gas({"from": self.signer.address}, block_identifier="pending")
            except ContractLogicError as e:
                raise ChainError(f"reverted: {self._decode(e)}") from None
            tx = fn.build_transaction({
                "from": self.signer.address,
                "gas": gas + gas // 5,
                "nonce": self.w3.eth.get_transaction_count(self.signer.address, "pending"),
                **self._fees(),
            })
            raw = bytes(self.signer.sign_transaction(tx))
            self._inflight = (bytes(Web3.keccak(raw)), raw)
            self.w3.eth.send_raw_transaction(raw)
            receipt = self._confirm(*self._inflight)
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        if receipt["status"] != 1:
            raise ChainError(f"transaction {tx_hash} failed")
        return TxResult(tx_hash, receipt["gasUsed"])

    def _fees(self) -> dict:
        o = self.options
        if o.tx_type == 0:
            return {"gasPrice": o.priority_fee_wei if o.priority_fee_wei is not None else self.w3.eth.gas_price}
        tip = o.priority_fee_wei if o.priority_fee_wei is not None else self.w3.eth.max_priority_fee
        base = self.w3.eth.get_block("latest").get("baseFeePerGas", 0)
        return {"type": 2, "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}

    def _confirm(self, tx_hash: bytes, raw: bytes) -> dict:
        """Waits until the transaction is `confirmations` deep on the chain the node sees. One a
        reorganisation removed is broadcast again as it was (same nonce, same hash), so it is
        included at most once: it is resent or adopted, never booked twice. Raises ChainError
        when it is not confirmed within the receipt timeout; it stays in flight for the next send."""
        deadline = time.monotonic() + self.options.receipt_timeout_s
        nonce_taken_at: float | None = None
        while True:
            receipt = self._receipt(tx_hash)
            if receipt is not None:
                if self.w3.eth.block_number >= receipt["blockNumber"] + self.options.confirmations:
                    # still on the canonical chain at that height?
                    if self.w3.eth.get_block(receipt["blockNumber"])["hash"] == receipt["blockHash"]:
                        self._inflight = None
                        return receipt
            elif self._inflight is not None:
                try:
                    self.w3.eth.send_raw_transaction(raw)  # reorganised away (or dropped): the same bytes again
                except Exception as e:  # noqa: BLE001 - "already known" while it is pending
                    if "nonce too low" in str(e) and self._receipt(tx_hash) is None:
                        # Right after a reorganisation geth may have re-included the transaction
                        # before its receipt is indexed: only a nonce taken for NONCE_TAKEN_S
                        # without our receipt means another transaction of this key took it.
                        nonce_taken_at = nonce_taken_at or time.monotonic()
                        if time.monotonic() - nonce_taken_at >= NONCE_TAKEN_S:
                            self._inflight = None
                            raise ChainError(
                                f"transaction 0x{tx_hash.hex()} was replaced by another with its nonce") from None
                    log.debug("rebroadcast 0x%s: %s", tx_hash.hex(), e)
            if time.monotonic() > deadline:
                raise ChainError(f"transaction 0x{tx_hash.hex()} not confirmed {self.options.confirmations} deep "
                                 f"within {self.options.receipt_timeout_s} s; it stays in flight")
            time.sleep(0.5)

    def _receipt(self, tx_hash: bytes) -> dict | None:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _decode(self, e: ContractLogicError) -> str:
        return describe_revert(self.w3, e, (*self.ledger.abi, *self.registry.abi, *abi("Grid")))

    def submit_batch(self, header: BatchHeader, signatures: list[bytes]) -> TxResult:
        return self._send(self.ledger.functions.submitBatch(header, signatures))

    def finalize(self, period: int, group_id: bytes) -> TxResult:
        return self._send(self.ledger.functions.finalize(period, group_id))

    def grid(self, address: str):
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi("Grid"))

    def grid_rolled_up(self, grid: str, period: int) -> bool:
        return bool(self.grid(grid).functions.exchange(period).call()[0])

    def roll_up(self, grid: str, period: int) -> TxResult:
        return self._send(self.grid(grid).functions.rollUp(period))

    def prove(self, function: str, *args) -> TxResult:
        """Sends one of the ledger's prove* fraud proofs."""
        return self._send(getattr(self.ledger.functions, function)(*args))


def _error_arg(abi_type: str, value: Any) -> str:
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value)


def describe_revert(w3: Web3, e: ContractLogicError, abi_entries) -> str:
    """Names a custom error by the given ABI entries (e.g. PeriodNotClosed(5, 4500))."""
    data = e.data if isinstance(e.data, str) else ""
    if data.startswith("0x") and len(data) >= 10:
        for entry in abi_entries:
            if entry.get("type") == "error":
                types = [i["type"] for i in entry["inputs"]]
                sig = f"{entry['name']}({','.join(types)})"
                if Web3.keccak(text=sig)[:4].hex().removeprefix("0x") == data[2:10]:
                    try:
                        args = w3.codec.decode(types, bytes.fromhex(data[10:]))
                    except Exception:
                        return f"{entry['name']}(undecodable 0x{data[10:]})"
                    return f"{entry['name']}({', '.join(_error_arg(t, a) for t, a in zip(types, args, strict=True))})"
    return str(e.message or e)


def with_rotation(changes: tuple[tuple[int, bytes], ...], from_period: int, key: bytes,
                  replaces_pending: bool) -> tuple[tuple[int, bytes], ...]:
    """A meter's key changes after a MeterKeyRotated event (MeterRegistry.rotateKey)."""
    return (*(changes[:-1] if replaces_pending else changes), (from_period, key))


def key_at(registered: bytes, changes: tuple[tuple[int, bytes], ...], period: int) -> bytes:
    """The key of the latest change from `period` or before, else the registered key."""
    for from_period, key in reversed(changes):
        if from_period <= period:
            return key
    return registered
