"""The node's view of the chain through web3.py: the MeterRegistry (meters, operators,
quorum), the PeriodLedger (batches, events, fraud proofs) and transactions signed by the
operator's Signer (node.signer). ABIs come with the package (node.abis)."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from web3 import Web3
from web3.exceptions import ContractLogicError

from node.abis import abi, contract_type  # noqa: F401  (contract_type: build-manifest bytecode, for tests)
from node.signer import LocalKeySigner, Signer
from rust_core.wire import BatchHeader, Register, SumNode

log = logging.getLogger(__name__)

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
class TxResult:
    tx_hash: str
    gas_used: int


class Chain:
    def __init__(self, rpc_url: str, registry: str, ledger: str, signer: Signer | bytes) -> None:
        """`signer`: the operator's Signer, or a raw private key (tests, read-only tools)."""
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
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

    # -- reads -----------------------------------------------------------------------------
    def block_number(self) -> int:
        return self.w3.eth.block_number

    def latest_timestamp(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def operators(self) -> list[bytes]:
        return sorted(bytes.fromhex(a[2:]) for a in self.registry.functions.operators().call())

    def quorum(self) -> int:
        return self.registry.functions.quorum().call()

    def get_batch(self, period: int, group_id: bytes) -> ChainBatch:
        r = self.ledger.functions.getBatch(period, group_id).call()
        return ChainBatch(bytes(r[0]), r[1], r[2], r[3], r[4], r[5])

    def last_final_period(self, group_id: bytes) -> int:
        return self.ledger.functions.lastFinalPeriod(group_id).call()

    def meter_registrations(self, from_block: int, to_block: int) -> list[tuple[bytes, Meter]]:
        """MeterRegistered events in the block range (inclusive)."""
        logs = self.registry.events.MeterRegistered().get_logs(from_block=from_block, to_block=to_block)
        return [
            (
                bytes(e.args.meterId),
                Meter(bytes.fromhex(e.args.key[2:]), e.args.kind, bytes(e.args.groupId), e.args.activeFrom,
                      e.args.activeUntil, e.args.baselineImportMwh, e.args.baselineExportMwh),
            )
            for e in logs
        ]

    def ledger_events(self, from_block: int, to_block: int) -> list[tuple[str, dict, int]]:
        """(event name, args, block) of BatchSubmitted/Finalized/Rejected, in chain order."""
        out = []
        for name in ("BatchSubmitted", "BatchFinalized", "BatchRejected"):
            for e in getattr(self.ledger.events, name)().get_logs(from_block=from_block, to_block=to_block):
                out.append((name, dict(e.args), e.blockNumber, e.logIndex))
        out.sort(key=lambda x: (x[2], x[3]))
        return [(n, a, b) for n, a, b, _ in out]

    # -- transactions ----------------------------------------------------------------------
    def _send(self, fn) -> TxResult:
        # Estimated against the pending block: with instant mining the latest block can be
        # minutes old, and the ledger's time checks must see the current time.
        with self._tx_lock:
            try:
                gas = fn.estimate_gas({"from": self.signer.address}, block_identifier="pending")
            except ContractLogicError as e:
                raise ChainError(f"reverted: {self._decode(e)}") from None
            tx = fn.build_transaction({
                "from": self.signer.address,
                "gas": gas + gas // 5,
                "nonce": self.w3.eth.get_transaction_count(self.signer.address, "pending"),
            })
            tx_hash = self.w3.eth.send_raw_transaction(self.signer.sign_transaction(tx))
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1:
            raise ChainError(f"transaction 0x{bytes(tx_hash).hex()} failed")
        return TxResult("0x" + bytes(tx_hash).hex(), receipt["gasUsed"])

    def _decode(self, e: ContractLogicError) -> str:
        """Names a custom error by the ledger's / registry's ABI (e.g. PeriodNotClosed(5, 4500))."""
        data = e.data if isinstance(e.data, str) else ""
        if data.startswith("0x") and len(data) >= 10:
            for entry in (*self.ledger.abi, *self.registry.abi, *abi("Grid")):
                if entry.get("type") == "error":
                    types = [i["type"] for i in entry["inputs"]]
                    sig = f"{entry['name']}({','.join(types)})"
                    if Web3.keccak(text=sig)[:4].hex().removeprefix("0x") == data[2:10]:
                        try:
                            args = self.w3.codec.decode(types, bytes.fromhex(data[10:]))
                        except Exception:
                            args = (data[10:],)
                        return f"{entry['name']}{tuple(a.hex() if isinstance(a, bytes) else a for a in args)}"
        return str(e.message or e)

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
