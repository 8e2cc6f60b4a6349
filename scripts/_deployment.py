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
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import collapse_if_tuple, function_abi_to_4byte_selector, to_checksum_address
from web3 import Web3
from web3.types import RPCEndpoint

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


ADMIN_TRANSFER_DELAY_S = 2 * 86400  # between beginning and accepting a registry admin transfer


@dataclass(frozen=True)
class NetworkSpec:
    period_seconds: int
    challenge_window_seconds: int
    quorum: int
    operators: tuple[str, ...]
    meter_operators: tuple[str, ...]
    grids: tuple[GridSpec, ...] = ()
    admin_transfer_delay_seconds: int = ADMIN_TRANSFER_DELAY_S

    @classmethod
    def from_toml(cls, path: Path) -> NetworkSpec:
        raw = tomllib.loads(path.read_text())
        _refuse_unknown(path, "", raw, {f.name for f in fields(cls)})
        for i, g in enumerate(raw.get("grids", ())):
            _refuse_unknown(path, f"grids[{i}].", g, {f.name for f in fields(GridSpec)})
        try:
            grids = tuple(
                GridSpec(g["name"], tuple(g.get("groups", ())), tuple(g.get("grids", ())), g.get("boundary_group"),
                         g.get("responsible_group"), int(g.get("loss_bps", 0)))
                for g in raw.get("grids", ())
            )
            return cls(int(raw["period_seconds"]), int(raw["challenge_window_seconds"]), int(raw["quorum"]),
                       tuple(raw["operators"]), tuple(raw.get("meter_operators", ())), grids,
                       int(raw.get("admin_transfer_delay_seconds", ADMIN_TRANSFER_DELAY_S)))
        except KeyError as e:
            raise SpecError(f"{path}: missing key {e.args[0]!r}") from None


def _refuse_unknown(path: Path, prefix: str, table: dict, known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise SpecError(f"{path}: unknown key(s) {', '.join(prefix + k for k in unknown)} "
                        f"(known: {', '.join(sorted(known))})")


class Transactor(Protocol):
    """Who signs a deployment's transactions. `address` is the sender; `web3` reads the chain."""

    address: str
    web3: Web3

    def deploy(self, contract: str, *args: Any) -> str:
        """Deploys the compiled `contract` with constructor `args`; returns its address."""
        ...

    def transact(self, contract: str, address: str, function: str, *args: Any, gas: int | None = None) -> Any:
        """Calls `function(*args)` of the `contract` at `address` and waits for it to be mined;
        raises if it reverts. `gas`: the gas limit (default: estimated)."""
        ...

    def send_calldata(self, to: str, data: bytes, gas: int) -> Callable[[], None]:
        """Sends a call encoded already (`data`: selector and arguments; for large calls, which
        web3's encoder makes slow). Returns a function that waits until it is mined and raises if
        it reverted: a sender may return before that, so that calls can be pipelined."""
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

    def transact(self, contract: str, address: str, function: str, *args: Any, gas: int | None = None) -> Any:
        from ape.contracts import ContractInstance

        method = getattr(ContractInstance(address, self._type(contract)), function)
        return method(*args, sender=self.account, **({"gas": gas} if gas is not None else {}))

    def send_calldata(self, to: str, data: bytes, gas: int) -> Callable[[], None]:
        self.account.transfer(to, 0, data=data, gas=gas)  # waits; ape raises if the transaction fails
        return lambda: None


class Web3Transactor:
    """A private key on a web3 connection. It counts its own nonce so that `wait=False` can queue
    many transactions (a benchmark registering thousands of meters in one block)."""

    def __init__(self, web3: Web3, key: bytes) -> None:
        self.web3, self.account = web3, Account.from_key(key)
        self.address = self.account.address
        self.nonce = 0
        self._contracts: dict[tuple[str, str], Any] = {}

    def _send(self, tx_fn: Any, gas: int | None, wait: bool, raw: dict | None = None) -> Any:
        # another sender with the same key may have used nonces since
        self.nonce = max(self.nonce, self.web3.eth.get_transaction_count(self.address, "pending"))
        params: dict[str, Any] = {"from": self.address, "nonce": self.nonce}
        if gas is not None:  # full blocks raise the base fee 12.5% each: stay above it for a while
            base = int(self.web3.eth.get_block("latest").get("baseFeePerGas", 0))
            params |= {"gas": gas, "maxFeePerGas": max(10**10, 3 * base), "maxPriorityFeePerGas": 1}
        tx = tx_fn.build_transaction(params) if raw is None else params | raw | {"chainId": self._chain_id()}
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
        key = (contract, address)
        if key not in self._contracts:  # web3 builds a contract object from its ABI slowly
            self._contracts[key] = contract_at(self.web3, contract, address)
        return self._send(getattr(self._contracts[key].functions, function)(*args), gas, wait)

    def send_calldata(self, to: str, data: bytes, gas: int) -> Callable[[], None]:
        tx_hash = self._send(None, gas, False, raw={"to": to_checksum_address(to), "data": data})
        return lambda: self._wait_raw(tx_hash)

    def _wait_raw(self, tx_hash: bytes, timeout_s: float = 600) -> None:
        """Polls the unformatted receipt: web3 formats each of a large call's logs, slowly."""
        deadline = time.monotonic() + timeout_s
        param = "0x" + bytes(tx_hash).hex()  # HexBytes.hex() has no 0x: anvil takes it, geth refuses it
        while True:
            answer = self.web3.provider.make_request(RPCEndpoint("eth_getTransactionReceipt"), [param])
            if "error" in answer:
                raise RuntimeError(f"eth_getTransactionReceipt({param}): {answer['error']}")
            if (receipt := answer.get("result")) is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"transaction 0x{tx_hash.hex()} not mined within {timeout_s:.0f} s")
            time.sleep(0.05)
        if int(receipt["status"], 16) != 1:
            raise RuntimeError(f"transaction 0x{tx_hash.hex()} reverted")

    def _chain_id(self) -> int:
        if not hasattr(self, "_chain"):
            self._chain = self.web3.eth.chain_id
        return self._chain


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
    registry = admin.deploy("MeterRegistry", admin.address, spec.admin_transfer_delay_seconds,
                            spec.period_seconds)
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
    source: str = field(default="", compare=False)  # where the row came from ("meters.csv:17")

    def register_args(self) -> tuple:
        return (meter_label_id(self.meter), *self.meter_struct())

    def meter_struct(self) -> tuple:
        """The registry's Meter struct (key, kind, groupId, activeFrom, activeUntil, baselines)."""
        return (self.key, KINDS[self.kind], group_id(self.group), self.active_from, self.active_until,
                self.baseline_import_mwh, self.baseline_export_mwh)

    @property
    def where(self) -> str:
        return self.source or "row"


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
            if not r["group"].strip():
                raise SpecError(f"{where}: group is empty")
            try:
                active_from = int(r["active_from"]) if r["active_from"].strip() else next_period
            except ValueError:
                raise SpecError(f"{where}: active_from {r['active_from']!r} is not a period number") from None
            if active_from < 1:
                raise SpecError(f"{where}: active_from must be a period >= 1, not {active_from}")
            rows.append(MeterRow(r["meter"], key, r["kind"], r["group"], active_from, *baseline, source=where))
    return rows


def write_meter_csv(path: Path, rows: list[MeterRow]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for r in rows:
            w.writerow([r.meter, r.key, r.kind, r.group, r.active_from,
                        f"{Decimal(r.baseline_import_mwh) / 1000}", f"{Decimal(r.baseline_export_mwh) / 1000}"])


# A registration transaction fills just under the block's gas target (half its limit), one in the
# pool at a time: EIP-1559 raises the base fee up to 12.5% after every block above the target,
# which over the ~290 full blocks of 100,000 meters would multiply it by about 10^11.
GAS_SHARE = 0.45
READ_CHUNK = 500  # meters a getMeters call reads


class RegistrationError(RuntimeError):
    """A registration the registry refused, naming the CSV row (nothing of its batch is registered)."""


def register(meter_operator: Transactor, dep: Deployment, rows: list[MeterRow],
             progress: Callable[[str], None] | None = None, max_batch: int | None = None) -> list[str]:
    """Registers every row not registered yet, as many per transaction (registerMeters, all or
    none) as GAS_SHARE of the block gas limit holds; returns the meters it registered.

    Safe to run again after an interruption: it first waits for this account's transactions still
    in flight, then reads what the registry holds and skips those rows; a row registered with
    other data than the CSV's is refused (SpecError), never changed. Each batch is estimated
    before it is sent, so a row the registry refuses is named (RegistrationError) before anything
    of its batch is sent; the next batch is encoded and estimated while the last one is mined."""
    say = progress or (lambda _: None)
    w3 = meter_operator.web3
    registry = contract_at(w3, "MeterRegistry", dep.registry)
    _wait_for_own_pending(w3, meter_operator.address, say)
    todo = _unregistered(registry, rows)
    if len(todo) < len(rows):
        say(f"{len(rows) - len(todo)} of {len(rows)} meters are registered already; registering the other {len(todo)}")
    gas_cap = int(w3.eth.get_block("latest")["gasLimit"] * GAS_SHARE)
    size = max_batch or 50  # grown to fill the share after the first estimate
    sent = 0
    done: list[str] = []
    in_flight: tuple[Callable[[], None], list[MeterRow], int] | None = None

    def confirm() -> None:
        assert in_flight is not None
        wait, batch, gas = in_flight
        try:
            wait()
        except Exception as e:
            raise RegistrationError(f"{batch[0].where} to {batch[-1].where} (meters {batch[0].meter} to "
                                    f"{batch[-1].meter}): the batch of {len(batch)} meters "
                                    f"was refused on chain ({e}); run again to resume") from e
        done.extend(r.meter for r in batch)
        say(f"registered {len(done)} of {len(todo)} meters ({len(batch)} in this transaction, {gas:,} gas)")

    while sent < len(todo):
        batch = todo[sent:sent + size]
        data = register_calldata(registry, batch)
        gas = _estimate(w3, registry, meter_operator.address, data, batch)
        if gas > gas_cap:
            size = max(1, int(len(batch) * gas_cap / gas * 0.98))
            continue
        if in_flight is not None:
            confirm()
        in_flight = (meter_operator.send_calldata(dep.registry, data, min(int(gas * 1.2), gas_cap)), batch, gas)
        sent += len(batch)
        if max_batch is None:  # fill the share: the per-meter cost of this batch, with a margin
            size = max(1, int(len(batch) * gas_cap / gas * 0.97))
    if in_flight is not None:
        confirm()
    return done


def _wait_for_own_pending(w3: Web3, sender: str, say: Callable[[str], None], timeout_s: float = 600) -> None:
    """An interrupted run may have left registrations in flight: what they register must be read
    as registered, not sent again."""
    address = to_checksum_address(sender)
    deadline = time.monotonic() + timeout_s
    while (pending := w3.eth.get_transaction_count(address, "pending") - w3.eth.get_transaction_count(address)) > 0:
        if time.monotonic() > deadline:
            raise RegistrationError(f"{pending} transaction(s) of {address} still pending after {timeout_s:.0f} s")
        say(f"waiting for {pending} transaction(s) of {address} still in flight")
        time.sleep(1)


def _unregistered(registry: Any, rows: list[MeterRow]) -> list[MeterRow]:
    todo = []
    for i in range(0, len(rows), READ_CHUNK):
        chunk = rows[i:i + READ_CHUNK]
        for r, held in zip(chunk, _get_meters(registry, [meter_label_id(r.meter) for r in chunk])):
            if held[0] == ZERO_ADDRESS:
                todo.append(r)
            elif tuple(held) != r.meter_struct():
                names = ("key", "kind", "group", "active_from", "active_until", "baseline_import", "baseline_export")
                diff = [n for n, a, b in zip(names, held, r.meter_struct()) if a != b]
                raise SpecError(f"{r.where}: meter {r.meter} is registered already with another "
                                f"{', '.join(diff)}; a registration is never changed")
    return todo


def _get_meters(registry: Any, ids: list[bytes]) -> list[tuple]:
    """registry.getMeters(ids) through eth-abi directly (web3's decoder is slow for thousands)."""
    fn = registry.get_function_by_name("getMeters")
    data = function_abi_to_4byte_selector(fn.abi) + abi_encode(["bytes32[]"], [ids])
    out = registry.w3.eth.call({"to": registry.address, "data": data})
    (meters,) = abi_decode([collapse_if_tuple(o) for o in fn.abi["outputs"]], out)
    return [(to_checksum_address(m[0]), *m[1:]) for m in meters]


def register_calldata(registry: Any, batch: list[MeterRow]) -> bytes:
    """registerMeters(meterIds, meters) encoded with eth-abi directly: web3's encoder takes half a
    second for a block's worth of rows, eth-abi a few milliseconds."""
    fn = registry.get_function_by_name("registerMeters")
    types = [collapse_if_tuple(i) for i in fn.abi["inputs"]]
    selector = function_abi_to_4byte_selector(fn.abi)
    return selector + abi_encode(types, [[meter_label_id(r.meter) for r in batch], [r.meter_struct() for r in batch]])


def _estimate(w3: Web3, registry: Any, sender: str, data: bytes, batch: list[MeterRow]) -> int:
    from web3.exceptions import ContractLogicError

    from node.chain import describe_revert

    try:
        return int(w3.eth.estimate_gas({"from": sender, "to": registry.address, "data": data}))
    except ContractLogicError as e:
        reason = describe_revert(w3, e, registry.abi)
        where = ""
        if reason.startswith(("InvalidMeter(", "MeterAlreadyRegistered(")):
            row = int(reason.split("(", 1)[1].split(",", 1)[0])
            where = f"{batch[row].where}: " if row < len(batch) else ""
        raise RegistrationError(f"{where}the registry refused the registration: {reason}") from None
