"""A real anvil chain, the deployed MeterRegistry + PeriodLedger, registered meters with real
keys, a delivery client speaking the oracle protocol, and node processes (for node tests)."""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import rust_core
from eth_account import Account
from rust_core.wire import Reading, SignedReading, group_id, meter_id
from web3 import Web3

from node.chain import contract_type

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev_key(i: int) -> bytes:
    return bytes(Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key)


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


class Anvil:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(ANVIL), "--hardfork", "paris", "--port", str(self.port), "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 20
        self.w3 = Web3(Web3.HTTPProvider(self.url))
        while not self.w3.is_connected():
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("anvil did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def send(w3: Web3, key: bytes, fn_or_ctor, **kw):
    acct = Account.from_key(key)
    tx = fn_or_ctor.build_transaction({"from": acct.address, "nonce": w3.eth.get_transaction_count(acct.address), **kw})
    h = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(h)
    assert receipt["status"] == 1
    return receipt


def deploy(w3: Web3, admin_key: bytes, name: str, *args) -> str:
    ct = contract_type(name)
    factory = w3.eth.contract(abi=ct["abi"], bytecode=ct["deploymentBytecode"]["bytecode"])
    return send(w3, admin_key, factory.constructor(*args))["contractAddress"]


@dataclass
class MeterKey:
    meter_id: bytes
    key: bytes
    group_id: bytes
    baseline: tuple[int, int]
    active_from: int


@dataclass
class Deployment:
    w3: Web3
    rpc_url: str
    registry: str
    ledger: str
    period_seconds: int
    window: int
    operator_keys: list[bytes]
    meters: list[MeterKey] = field(default_factory=list)

    @property
    def domain(self) -> bytes:
        return rust_core.domain_separator(self.w3.eth.chain_id, bytes.fromhex(self.ledger[2:]))

    def ledger_contract(self):
        return self.w3.eth.contract(address=self.ledger, abi=contract_type("PeriodLedger")["abi"])

    def batch(self, period: int, group_id: bytes) -> tuple:
        return tuple(self.ledger_contract().functions.getBatch(period, group_id).call())


def deploy_settlement(anvil: Anvil, *, period_seconds: int, window: int, n_operators: int, quorum: int,
                      n_meters: int, group: str = "community-a", active_from: int | None = None) -> Deployment:
    w3 = anvil.w3
    admin = dev_key(0)
    admin_addr = Account.from_key(admin).address
    registry = deploy(w3, admin, "MeterRegistry", admin_addr)
    ledger = deploy(w3, admin, "PeriodLedger", registry, period_seconds, window)
    reg = w3.eth.contract(address=registry, abi=contract_type("MeterRegistry")["abi"])
    send(w3, admin, reg.functions.grantRole(reg.functions.METER_OPERATOR_ROLE().call(), admin_addr))
    op_keys = [dev_key(1 + i) for i in range(n_operators)]
    for k in op_keys:
        send(w3, admin, reg.functions.addOperator(Account.from_key(k).address))
    send(w3, admin, reg.functions.setQuorum(quorum))
    gid = group_id(group)
    start = active_from if active_from is not None else int(time.time()) // period_seconds
    dep = Deployment(w3, anvil.url, registry, ledger, period_seconds, window, op_keys)
    for i in range(n_meters):
        key = secrets.token_bytes(32)
        m = MeterKey(meter_id("sml", f"0a01{i:08x}"), key, gid, (1_000_000 + i, 5_000 * i), start)
        send(w3, admin, reg.functions.registerMeter(
            m.meter_id, Web3.to_checksum_address(rust_core.address_of(key)), 2, gid, start, 2**64 - 1, *m.baseline))
        dep.meters.append(m)
    return dep


def deploy_grid(dep: Deployment, name: str = "street-1") -> str:
    """A Grid over the deployment's one group, without upstream; the group carries the imbalance."""
    admin = dev_key(0)
    group = dep.meters[0].group_id
    grid = deploy(dep.w3, admin, "Grid", dep.registry, dep.ledger, rust_core.keccak256(name.encode()), b"\x00" * 32,
                  group, 0)
    c = dep.w3.eth.contract(address=grid, abi=contract_type("Grid")["abi"])
    send(dep.w3, admin, c.functions.addGroup(group))
    return grid


def wire(dep: Deployment, readings: list[tuple], keys: list[bytes]) -> list[dict]:
    """Readings (meter_id, period, ts, import, export) signed by the meters' keys, as the oracle
    sends them (rust_core.wire.SignedReading entries)."""
    sigs = rust_core.sign_readings(dep.domain, readings, keys)
    return [
        SignedReading(**Reading._make(r)._asdict(), signature=s, import_wh=Decimal(r[3]) / 1000,
                      export_wh=Decimal(r[4]) / 1000, raw_frame=b"frame", protocol="sml").to_wire()
        for r, s in zip(readings, sigs)
    ]


class NodeProcess:
    """`python -m node.cli run --config ...` as a child process with its own archive file."""

    def __init__(self, workdir: Path, name: str, dep: Deployment, key: bytes, port: int, peers: list[str], *,
                 grace: float, takeover: float, grids: tuple[str, ...] = ()) -> None:
        self.name, self.port, self.key = name, port, key
        self.url = f"http://127.0.0.1:{port}"
        self.address = rust_core.address_of(key)
        self.db = workdir / f"{name}.db"
        self.log = workdir / f"{name}.log"
        (workdir / f"{name}.key").write_text(key.hex())
        self.config = workdir / f"{name}.toml"
        self.config.write_text("\n".join([
            f'name = "{name}"', f'rpc_url = "{dep.rpc_url}"', f'registry = "{dep.registry}"',
            f'ledger = "{dep.ledger}"', f'operator_key_file = "{name}.key"', f'archive = "sqlite:///{name}.db"',
            f'listen = "127.0.0.1:{port}"', "peers = [" + ", ".join(f'"{p}"' for p in peers) + "]",
            f"grace_seconds = {grace}", f"takeover_seconds = {takeover}", "poll_seconds = 0.3",
            "grids = [" + ", ".join(f'"{g}"' for g in grids) + "]", "",
        ]))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "run", "--config", str(self.config)],
            stdout=self.log.open("a"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
        wait_http(self.url + "/healthz", proc=self.proc)

    def kill(self) -> None:
        """Killed without warning (SIGKILL): what a crash looks like."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def expected_root(readings_by_period: dict[int, list[tuple]], dep: Deployment, period: int,
                  sigs: dict[tuple, bytes]) -> tuple:
    """The root the honest nodes must commit for `period`, computed here from what was delivered:
    leaves by ascending meter id, each counting from the meter's reading of the latest earlier
    delivered period (all of which finalize in these tests) or its baseline."""
    leaves = []
    for r in sorted(readings_by_period[period]):
        m = next(x for x in dep.meters if x.meter_id == r[0])
        prev = (m.active_from - 1, *m.baseline)
        for p in sorted(readings_by_period):
            if p < period:
                for q in readings_by_period[p]:
                    if q[0] == r[0]:
                        prev = (p, q[3], q[4])
        leaves.append((*r, *prev, sigs[r]))
    return rust_core.MerkleSumTree(leaves).root
