"""Deploying a settlement network, registering meter points, and the deployment file.

The deployment file (JSON, rust_core.deployment) is what every other tool reads: node and oracle configs take the
ledger and registry addresses from it, the audit takes the grids and the first block.

One deploy path for everything that deploys (`ape run deploy`, `ape run register`, the demo, the
node tests, the benchmarks): `deploy(admin, spec)` and `register(operator, dep, rows)` send
their transactions through a `Transactor`, either an ape account (`ApeTransactor`: inside
`ape run` or pytest, any network ape knows) or a raw key on a web3 connection
(`Web3Transactor`: a plain anvil a harness started). Both take the contracts' ABI and bytecode
from the one compiled artifact reader, `node.chain.contract_type` (ape's build manifest).
"""
from __future__ import annotations

import csv
import time
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from eth_account import Account
from eth_utils import to_checksum_address
from web3 import Web3

from node.chain import contract_type
from rust_core.deployment import Deployment
from rust_core.wire import group_id, meter_label_id, wh_to_mwh

KINDS = {"consumption": 0, "generation": 1, "prosumer": 2, "storage": 3, "boundary": 4}
OPEN_ENDED = 2**64 - 1
ZERO_GROUP = b"\x00" * 32
GRID_ROLE = Web3.keccak(text="GRID_ROLE")  # MeterRegistry.GRID_ROLE
ZERO_ADDRESS = "0x" + "00" * 20


class SpecError(ValueError):
    """A network spec or meter CSV that cannot be deployed as written (names file, row and field)."""


@dataclass(frozen=True)
class GridSpec:
    name: str
    groups: tuple[str, ...]
    grids: tuple[str, ...] = ()  # member grids, deployed before this one
    boundary_group: str | None = None
    responsible_group: str | None = None
    loss_bps: int = 0


@dataclass(frozen=True)
class NetworkSpec:
    period_seconds: int
    challenge_window_seconds: int
    quorum: int
    operators: tuple[str, ...]
    meter_operators: tuple[str, ...]
    grids: tuple[GridSpec, ...] = ()

    @classmethod
    def from_toml(cls, path: Path) -> NetworkSpec:
        raw = tomllib.loads(path.read_text())
        try:
            grids = tuple(
                GridSpec(g["name"], tuple(g.get("groups", ())), tuple(g.get("grids", ())), g.get("boundary_group"),
                         g.get("responsible_group"), int(g.get("loss_bps", 0)))
                for g in raw.get("grids", ())
            )
            return cls(int(raw["period_seconds"]), int(raw["challenge_window_seconds"]), int(raw["quorum"]),
                       tuple(raw["operators"]), tuple(raw.get("meter_operators", ())), grids)
        except KeyError as e:
            raise SpecError(f"{path}: missing key {e.args[0]!r}") from None


class Transactor(Protocol):
    """Who signs a deployment's transactions. `address` is the sender; `web3` reads the chain."""

    address: str
    web3: Web3

    def deploy(self, contract: str, *args: Any) -> str:
        """Deploys the compiled `contract` with constructor `args`; returns its address."""
        ...

    def transact(self, contract: str, address: str, function: str, *args: Any) -> None:
        """Calls `function(*args)` of the `contract` at `address` and waits for it to be mined;
        raises if it reverts."""
        ...


class ApeTransactor:
    """An ape account (a test account, or `accounts.load(alias)`) on ape's connected provider."""

    def __init__(self, account: Any) -> None:
        from ape import chain

        self.account, self.address, self.web3 = account, account.address, chain.provider.web3

    @staticmethod
    def _type(contract: str) -> Any:
        from ethpm_types import ContractType

        return ContractType.model_validate(contract_type(contract))

    def deploy(self, contract: str, *args: Any) -> str:
        from ape.contracts import ContractContainer

        return self.account.deploy(ContractContainer(self._type(contract)), *args).address

    def transact(self, contract: str, address: str, function: str, *args: Any) -> None:
        from ape.contracts import ContractInstance

        getattr(ContractInstance(address, self._type(contract)), function)(*args, sender=self.account)


class Web3Transactor:
    """A private key on a web3 connection. It counts its own nonce so that `wait=False` can queue
    many transactions (a benchmark registering thousands of meters in one block)."""

    def __init__(self, web3: Web3, key: bytes) -> None:
        self.web3, self.account = web3, Account.from_key(key)
        self.address = self.account.address
        self.nonce = 0

    def _send(self, tx_fn: Any, gas: int | None, wait: bool) -> Any:
        # another sender with the same key may have used nonces since
        self.nonce = max(self.nonce, self.web3.eth.get_transaction_count(self.address, "pending"))
        params: dict[str, Any] = {"from": self.address, "nonce": self.nonce}
        if gas is not None:
            params |= {"gas": gas, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}
        tx = tx_fn.build_transaction(params)
        tx_hash = self.web3.eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)
        self.nonce += 1
        if not wait:
            return tx_hash
        receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=600)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
        return receipt

    def deploy(self, contract: str, *args: Any) -> str:
        ct = contract_type(contract)
        factory = self.web3.eth.contract(abi=ct["abi"], bytecode=ct["deploymentBytecode"]["bytecode"])
        return self._send(factory.constructor(*args), None, True)["contractAddress"]

    def transact(self, contract: str, address: str, function: str, *args: Any, gas: int | None = None,
                 wait: bool = True) -> Any:
        """As `Transactor.transact`; with `wait=False` (and a fixed `gas`, since nothing is
        estimated against a pending state) it returns the transaction hash at once."""
        fn = getattr(contract_at(self.web3, contract, address).functions, function)(*args)
        return self._send(fn, gas, wait)


def contract_at(web3: Web3, contract: str, address: str) -> Any:
    """A web3 contract object for reads (and for `Web3Transactor`)."""
    return web3.eth.contract(address=to_checksum_address(address), abi=contract_type(contract)["abi"])


def deploy(admin: Transactor, spec: NetworkSpec) -> Deployment:
    """Registry, ledger and grids (inner grids first); roles, operators and quorum as specified."""
    known: set[str] = set()
    for g in spec.grids:  # the whole spec is checked before the first transaction
        _check_grid(g, known)
        known.add(g.name)
    w3 = admin.web3
    first_block = w3.eth.block_number + 1
    registry = admin.deploy("MeterRegistry", admin.address)
    meter_operator_role = contract_at(w3, "MeterRegistry", registry).functions.METER_OPERATOR_ROLE().call()
    for op in spec.meter_operators:
        admin.transact("MeterRegistry", registry, "grantRole", meter_operator_role, op)
    for op in spec.operators:
        admin.transact("MeterRegistry", registry, "addOperator", op)
    admin.transact("MeterRegistry", registry, "setQuorum", spec.quorum)
    # a challenged batch's co-signers get as long to reveal its leaves as the challenge window
    ledger = admin.deploy("PeriodLedger", registry, spec.period_seconds, spec.challenge_window_seconds,
                          spec.challenge_window_seconds)
    dep = Deployment(chain_id=w3.eth.chain_id, registry=registry, ledger=ledger, period_seconds=spec.period_seconds,
                     challenge_window_seconds=spec.challenge_window_seconds, first_block=first_block)
    for g in spec.grids:
        add_grid(admin, dep, g)
    return dep


def _check_grid(g: GridSpec, deployed: set[str]) -> str:
    """Refuses a grid that cannot be deployed after `deployed`; returns its responsible group."""
    if not g.responsible_group:
        raise SpecError(f"grid {g.name!r}: responsible_group (who carries the imbalance) is required")
    for inner in g.grids:
        if inner not in deployed:
            raise SpecError(f"grid {g.name!r}: member grid {inner!r} must be listed before it")
    return g.responsible_group


def add_grid(admin: Transactor, dep: Deployment, g: GridSpec) -> str:
    """Deploys one grid of the spec into `dep` (its member grids must be in `dep` already)."""
    responsible = _check_grid(g, set(dep.grids))
    for name in (*g.groups, *filter(None, (g.boundary_group, g.responsible_group))):
        dep.groups[name] = "0x" + group_id(name).hex()
    grid = admin.deploy("Grid", dep.registry, dep.ledger, group_id(g.name),
                        group_id(g.boundary_group) if g.boundary_group else ZERO_GROUP,
                        group_id(responsible), g.loss_bps)
    # the registry's one index of grid membership: only a grid may claim its members there
    admin.transact("MeterRegistry", dep.registry, "grantRole", GRID_ROLE, grid)
    for name in g.groups:
        admin.transact("Grid", grid, "addGroup", group_id(name))
    for inner in g.grids:
        admin.transact("Grid", grid, "addGrid", dep.grids[inner])
    dep.grids[g.name] = grid
    return grid


@dataclass(frozen=True)
class MeterRow:
    """One meter point as a meter point operator keeps it (one CSV row)."""

    meter: str  # scheme:identity
    key: str  # the address of the meter's (gateway's) signing key
    kind: str
    group: str
    active_from: int  # first period the meter settles in
    baseline_import_mwh: int
    baseline_export_mwh: int
    active_until: int = OPEN_ENDED

    def register_args(self) -> tuple:
        return (meter_label_id(self.meter), self.key, KINDS[self.kind], group_id(self.group), self.active_from,
                self.active_until, self.baseline_import_mwh, self.baseline_export_mwh)


CSV_FIELDS = ("meter", "key", "kind", "group", "active_from", "baseline_import_wh", "baseline_export_wh")


def read_meter_csv(path: Path, period_seconds: int, now: float | None = None) -> list[MeterRow]:
    """Columns: meter (scheme:identity), key (address), kind (consumption|generation|prosumer|
    storage|boundary), group, active_from (a period number, or empty for the next period),
    baseline_import_wh, baseline_export_wh (the registers at registration, in Wh)."""
    rows: list[MeterRow] = []
    next_period = int((now if now is not None else time.time()) // period_seconds) + 1
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_FIELDS if c not in (reader.fieldnames or ())]
        if missing:
            raise SpecError(f"{path}: missing column(s) {', '.join(missing)}")
        seen: set[str] = set()
        for line, r in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                meter_label_id(r["meter"])  # validates the id's form
                baseline = (wh_to_mwh(r["baseline_import_wh"], "baseline_import_wh"),
                            wh_to_mwh(r["baseline_export_wh"], "baseline_export_wh"))
            except ValueError as e:
                raise SpecError(f"{where}: {e}") from None
            if r["meter"] in seen:
                raise SpecError(f"{where}: meter {r['meter']} listed twice")
            seen.add(r["meter"])
            if r["kind"] not in KINDS:
                raise SpecError(f"{where}: kind {r['kind']!r} is not one of {', '.join(KINDS)}")
            try:
                key = to_checksum_address(r["key"])
            except ValueError:
                raise SpecError(f"{where}: key {r['key']!r} is not an address") from None
            active_from = int(r["active_from"]) if r["active_from"].strip() else next_period
            rows.append(MeterRow(r["meter"], key, r["kind"], r["group"], active_from, *baseline))
    return rows


def write_meter_csv(path: Path, rows: list[MeterRow]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for r in rows:
            w.writerow([r.meter, r.key, r.kind, r.group, r.active_from,
                        f"{Decimal(r.baseline_import_mwh) / 1000}", f"{Decimal(r.baseline_export_mwh) / 1000}"])


def register(meter_operator: Transactor, dep: Deployment, rows: list[MeterRow]) -> list[str]:
    """Registers every row not registered yet; returns the meters it registered."""
    registry = contract_at(meter_operator.web3, "MeterRegistry", dep.registry)
    done = []
    for r in rows:
        if registry.functions.getMeter(meter_label_id(r.meter)).call()[0] != ZERO_ADDRESS:
            continue  # re-running the same CSV is safe: registered meters are skipped
        meter_operator.transact("MeterRegistry", dep.registry, "registerMeter", *r.register_args())
        done.append(r.meter)
    return done
