"""A real anvil chain, the deployed MeterRegistry + PeriodLedger, registered meters with real
keys, a delivery client speaking the oracle protocol, and node processes (for node tests).
Contracts are deployed and meters registered by the project's one deploy path
(scripts/_deployment.py) with a raw key on the anvil the `anvil` fixture started."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
from eth_account import Account
from web3 import Web3

import rust_core
from rust_core.keystore import write_keystore
from rust_core.wire import Reading, SignedReading, group_id, meter_id
from scripts import _deployment
from scripts._deployment import GridSpec, MeterRow, NetworkSpec, Web3Transactor, add_grid, contract_at, deploy, register
from scripts._processes import ROOT, Anvil, dev_key, stop_process


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


@dataclass
class MeterKey:
    meter_id: bytes
    key: bytes
    group_id: bytes
    baseline: tuple[int, int]
    active_from: int


@dataclass
class Deployment:
    """What a node test needs of its network: the deployment record, the chain, the keys."""

    w3: Web3
    rpc_url: str
    deployment: _deployment.Deployment  # what the deployment file holds
    admin: Web3Transactor
    group: str
    operator_keys: list[bytes]
    meters: list[MeterKey] = field(default_factory=list)

    @property
    def registry(self) -> str:
        return self.deployment.registry

    @property
    def ledger(self) -> str:
        return self.deployment.ledger

    @property
    def period_seconds(self) -> int:
        return self.deployment.period_seconds

    @property
    def window(self) -> int:
        return self.deployment.challenge_window_seconds

    @property
    def domain(self) -> bytes:
        return rust_core.domain_separator(self.w3.eth.chain_id, bytes.fromhex(self.ledger[2:]))

    def ledger_contract(self):
        return contract_at(self.w3, "PeriodLedger", self.ledger)

    def batch(self, period: int, group_id: bytes) -> tuple:
        return tuple(self.ledger_contract().functions.getBatch(period, group_id).call())


def deploy_settlement(anvil: Anvil, *, period_seconds: int, window: int, n_operators: int, quorum: int,
                      n_meters: int, group: str = "community-a", active_from: int | None = None) -> Deployment:
    """Registry and ledger (admin: dev account 0, also the meter operator), operators dev
    accounts 1..n, and `n_meters` prosumer meters of one group with fresh keys."""
    admin = Web3Transactor(anvil.w3, dev_key(0))
    op_keys = [dev_key(1 + i) for i in range(n_operators)]
    spec = NetworkSpec(period_seconds, window, quorum, tuple(Account.from_key(k).address for k in op_keys),
                       (admin.address,))
    dep = Deployment(anvil.w3, anvil.url, deploy(admin, spec), admin, group, op_keys)
    start = active_from if active_from is not None else int(time.time()) // period_seconds
    rows = []
    for i in range(n_meters):
        key = secrets.token_bytes(32)
        label = f"sml:0a01{i:08x}"
        baseline = (1_000_000 + i, 5_000 * i)
        dep.meters.append(MeterKey(meter_id("sml", f"0a01{i:08x}"), key, group_id(group), baseline, start))
        rows.append(MeterRow(label, Account.from_key(key).address, "prosumer", group, start, *baseline))
    register(admin, dep.deployment, rows)
    return dep


def deploy_grid(dep: Deployment, name: str = "street-1") -> str:
    """A Grid over the deployment's one group, without upstream; the group carries the imbalance.
    Returns once the group counts in the grid: a member counts from the period after it was added,
    so a period delivered in the adding period would roll up without it."""
    address = add_grid(dep.admin, dep.deployment, GridSpec(name, (dep.group,), responsible_group=dep.group))
    counts_from = contract_at(dep.w3, "Grid", address).functions.addedFrom(dep.meters[0].group_id).call()
    while time.time() < counts_from * dep.period_seconds:
        time.sleep(0.2)
    return address


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
        # the deployment file and the operator keystore the config points at (grids by name)
        grid_names = {f"grid-{i}": g for i, g in enumerate(grids)}
        dep.deployment.model_copy(update={"grids": grid_names}).save(workdir / f"{name}.deployment.json")
        if not (workdir / f"{name}.keystore.json").exists():
            write_keystore(workdir / f"{name}.keystore.json", key, "local", iterations=1000)  # light kdf: quick start
        self.config = workdir / f"{name}.toml"
        self.config.write_text("\n".join([
            f'name = "{name}"', f'rpc_url = "{dep.rpc_url}"', f'deployment = "{name}.deployment.json"',
            f'archive = "sqlite:///{name}.db"',
            f'listen = "127.0.0.1:{port}"', "peers = [" + ", ".join(f'"{p}"' for p in peers) + "]",
            f"grace_seconds = {grace}", f"takeover_seconds = {takeover}", "poll_seconds = 0.3",
            "[operator]", f'keystore = "{name}.keystore.json"', 'password_env = "NODE_HARNESS_PASSWORD"', "",
        ]))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), NODE_HARNESS_PASSWORD="local")
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
        stop_process(self.proc)


def wait_status(dep: Deployment, period: int, status: int, timeout: float = 40.0) -> tuple:
    """The batch of the deployment's group for `period` once it has `status` (2 final, 3 rejected)."""
    group = dep.meters[0].group_id
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = dep.batch(period, group)
        if b[5] == status:
            return b
        time.sleep(0.3)
    raise AssertionError(f"period {period}: batch {dep.batch(period, group)} never reached status {status}")


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
