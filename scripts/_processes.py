"""Child processes of the demo, the node tests and the benchmarks: a local anvil chain, settlement
nodes and meter oracles, each started with its own log file, waited for until it answers, and
stopped with SIGTERM (SIGKILL after a grace)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from eth_account import Account
from web3 import Web3

from devnet.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
# anvil's funded development accounts derive from this mnemonic (m/44'/60'/0'/0/i)
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def dev_key(i: int) -> bytes:
    """The private key of anvil's i-th funded development account."""
    Account.enable_unaudited_hdwallet_features()
    return bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key)


class Anvil:
    """A fresh anvil chain on a free loopback port, at the pinned hardfork (ape-config.yaml)."""

    def __init__(self, *extra_args: str, timeout: float = 20.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(ANVIL), "--hardfork", "paris", "--port", str(self.port), "--silent",
                                      *extra_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.w3 = Web3(Web3.HTTPProvider(self.url))
        deadline = time.time() + timeout
        while not self.w3.is_connected():
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"anvil ({ANVIL}) did not start on port {self.port}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.proc, grace=10)


def stop_process(proc: subprocess.Popen | None, grace: float = 15) -> None:
    """SIGTERM, and SIGKILL if it has not exited after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class ManagedProcess:
    def __init__(self, name: str, argv: list[str], log: Path, health_url: str | None = None) -> None:
        self.name, self.argv, self.log, self.health_url = name, argv, log, health_url
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> ManagedProcess:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, *self.argv], stdout=self.log.open("a"),
                                     stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        if self.health_url:
            deadline = time.time() + timeout
            while True:
                self.check()
                try:
                    httpx.get(self.health_url, timeout=1.0)
                    break
                except httpx.HTTPError as e:
                    if time.time() > deadline:
                        raise RuntimeError(f"{self.name} did not answer at {self.health_url} (log: {self.log})") from e
                    time.sleep(0.2)
        return self

    def check(self) -> None:
        """Raises if the process has died, naming its log."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.proc.returncode}; see {self.log}")

    def stop(self) -> None:
        stop_process(self.proc)


def start_nodes(work: Path, rpc_url: str, deployment: Path, operator_keys: list[str], *,
                grace_seconds: float, takeover_seconds: float,
                confirmations: int = 0) -> list[tuple[ManagedProcess, str]]:
    """One settlement node per operator key (hex), each peered with the others: (process, url).
    The nodes read the contracts from the `deployment` file and roll up all of its grids."""
    from rust_core.keystore import write_keystore

    ports = [free_port() for _ in operator_keys]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    started = []
    for i, (key, port) in enumerate(zip(operator_keys, ports)):
        name = f"node-{chr(ord('a') + i)}"
        # a light keystore (pbkdf2, few iterations) so that start-up stays quick; operators use the default scrypt
        write_keystore(work / f"{name}.keystore.json", bytes.fromhex(key.removeprefix("0x")), "local", iterations=1000)
        (work / f"{name}.pw").write_text("local\n")
        peers = ", ".join(f'"{u}"' for j, u in enumerate(urls) if j != i)
        config = work / f"{name}.toml"
        config.write_text(
            f'name = "{name}"\nrpc_url = "{rpc_url}"\ndeployment = "{deployment.resolve()}"\n'
            f'archive = "sqlite:///{name}.db"\nlisten = "127.0.0.1:{port}"\n'
            f"peers = [{peers}]\ngrace_seconds = {grace_seconds}\ntakeover_seconds = {takeover_seconds}\n"
            f'poll_seconds = 0.3\n[operator]\nkeystore = "{name}.keystore.json"\npassword_file = "{name}.pw"\n'
            f"[chain]\nconfirmations = {confirmations}\n")
        proc = ManagedProcess(name, ["-m", "node.cli", "run", "--config", str(config)], work / f"{name}.log",
                              f"{urls[i]}/healthz")
        started.append((proc.start(), urls[i]))
    return started


def start_oracle(work: Path, name: str, *, deployment: Path, max_skew_s: float,
                 nodes: list[str], meters: list[dict]) -> ManagedProcess:
    """A `meter-oracle run` process delivering to `nodes`, signing for the `deployment` file's
    domain; each meter is a dict with label
    (scheme:identity), key (32 bytes), url (device), max_power_w and interval_s."""
    from rust_core.keystore import write_keystore

    keys = work / name
    keys.mkdir()
    lines = [f'outbox = "{name}.sqlite"', f'deployment = "{deployment.resolve()}"', f"max_skew_s = {max_skew_s}", ""]
    for i, url in enumerate(nodes):
        lines += ["[[nodes]]", f'name = "node-{chr(ord("a") + i)}"', f'url = "{url}"', ""]
    for n, m in enumerate(meters):
        # a light keystore (pbkdf2, few iterations) so that start-up stays quick; operators use the default scrypt
        write_keystore(keys / f"m{n}.json", m["key"], "local", iterations=1000)
        (keys / f"m{n}.pw").write_text("local\n")
        protocol = m["label"].partition(":")[0]
        lines += ["[[meters]]", f'meter = "{m["label"]}"', f'keystore = "{name}/m{n}.json"',
                  f'password_file = "{name}/m{n}.pw"', f'max_power_w = {m["max_power_w"]}', ""]
        lines += ["[[devices]]", f'name = "{protocol}-{n}"', f'protocol = "{protocol}"', f'url = "{m["url"]}"',
                  f'interval_s = {m["interval_s"]}', ""]
    config = work / f"{name}.toml"
    config.write_text("\n".join(lines))
    return ManagedProcess(name, ["-m", "meter_oracle.cli", "run", "--config", str(config)], work / f"{name}.log").start()
