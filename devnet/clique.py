"""A Clique proof-of-authority network of N geth signers on this machine, one per operator.

`CliqueNetwork.create` generates the signer keys, the devp2p node keys (so every enode is known
before start and the peers can be static), a genesis (London at most: Clique refuses Shanghai and
Cancun, and a genesis with them splits the network) that funds the signers and the development
accounts, and one data directory per signer. The network's state (keys, ports, process ids) is a
JSON file in its directory, so `make network-stop` stops what `make network` started.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_account import Account
from eth_keys import keys
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import RPCEndpoint

from devnet.geth import GETH, ensure_geth
from devnet.ports import free_port
from rust_core.keystore import encrypt_key

CHAIN_ID = 4242  # ape-config.yaml's ethereum:settlement network has the same id
DEFAULT_PERIOD = 2
GAS_LIMIT = 30_000_000
DEV_MNEMONIC = "test test test test test test test test test test test junk"  # ape's and anvil's test accounts
FUNDED_DEV_ACCOUNTS = 10  # admin (0), operators, meter operators of the demo and the tests
BALANCE_WEI = 10**24
STATE_FILE = "network.json"
# Every fork up to London from block 0. Nothing later: see the module docstring.
FORKS = ("homesteadBlock", "eip150Block", "eip155Block", "eip158Block", "byzantiumBlock", "constantinopleBlock",
         "petersburgBlock", "istanbulBlock", "muirGlacierBlock", "berlinBlock", "londonBlock", "arrowGlacierBlock",
         "grayGlacierBlock")
Account.enable_unaudited_hdwallet_features()


class NetworkError(RuntimeError):
    """The network could not be created, started or reached (names the signer and its log)."""


def exit_reason(log: Path, context: int = 8) -> str:
    """The lines of a geth log that say why it stopped: from the first fatal error or panic
    (a panic's goroutine dump runs on for pages), else the last lines."""
    lines = log.read_text(errors="replace").splitlines()
    for n, line in enumerate(lines):
        if line.startswith(("Fatal:", "panic:", "fatal error:", "CRIT")):
            return "\n".join(lines[n:n + context])
    return "\n".join(lines[-context:])


def _distinct_free_port(taken: set[int]) -> int:
    while (port := free_port()) in taken:
        pass
    taken.add(port)
    return port


def dev_accounts(n: int = FUNDED_DEV_ACCOUNTS) -> list[str]:
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address for i in range(n)]


@dataclass
class Signer:
    index: int
    address: str
    key: str  # hex, the sealing key (also in the data directory's keystore)
    nodekey: str  # hex, the devp2p identity
    p2p_port: int
    http_port: int
    auth_port: int
    host: str = "127.0.0.1"  # p2p address (in the enode)
    pid: int | None = None
    netns: str | None = None  # network namespace it runs in (`ip netns exec`), None: the caller's
    rpc_host: str | None = None  # where its JSON-RPC is reached, when not at `host`

    @property
    def name(self) -> str:
        return f"signer{self.index}"

    @property
    def url(self) -> str:
        return f"http://{self.rpc_host or self.host}:{self.http_port}"

    @property
    def enode(self) -> str:
        pub = keys.PrivateKey(bytes.fromhex(self.nodekey)).public_key.to_hex()[2:]
        return f"enode://{pub}@{self.host}:{self.p2p_port}"


@dataclass
class CliqueNetwork:
    directory: Path
    chain_id: int
    period: int
    signers: list[Signer]
    funded: list[str] = field(default_factory=list)

    # -- creation ------------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: Path, n_signers: int = 3, *, period: int = DEFAULT_PERIOD, chain_id: int = CHAIN_ID,
               base_port: int | None = None, funded: list[str] | None = None,
               placement: list[tuple[str, str, str]] | None = None) -> CliqueNetwork:
        """Keys, genesis and initialised data directories. `base_port`: signer i listens for
        JSON-RPC on base_port+i, p2p on base_port+100+i, the engine API on base_port+200+i;
        without it every port is a free one. `placement`: per signer (network namespace, p2p
        address, RPC address), e.g. from devnet.netns.Operators: each signer runs in its own
        namespace (ports 8545 / 30303 / 8551 there) and peers over its p2p address only."""
        if n_signers < 1:
            raise NetworkError(f"a Clique network needs at least one signer, not {n_signers}")
        if period < 1:
            raise NetworkError(f"block period must be at least 1 s, not {period}")
        directory = Path(directory).resolve()
        if (directory / STATE_FILE).exists():
            raise NetworkError(f"{directory} already holds a network ({STATE_FILE}); stop it and remove the folder")
        directory.mkdir(parents=True, exist_ok=True)
        signers = []
        taken: set[int] = set()
        if placement is not None and len(placement) != n_signers:
            raise NetworkError(f"placement names {len(placement)} namespaces for {n_signers} signers")
        for i in range(n_signers):
            if placement is not None:  # a namespace of its own: its own port space
                ports = (8545, 30303, 8551)
            elif base_port is not None:
                ports = (base_port + i, base_port + 100 + i, base_port + 200 + i)
            else:  # distinct free ports (the kernel may hand out a just-closed one again)
                ports = tuple(_distinct_free_port(taken) for _ in range(3))
            key = secrets.token_hex(32)
            signers.append(Signer(i, Account.from_key(key).address, key, secrets.token_hex(32),
                                  p2p_port=ports[1], http_port=ports[0], auth_port=ports[2]))
            if placement is not None:
                signers[-1].netns, signers[-1].host, signers[-1].rpc_host = placement[i]
        net = cls(directory, chain_id, period, signers, funded if funded is not None else dev_accounts())
        net._init_datadirs()
        net.save()
        return net

    def genesis(self) -> dict:
        sealers = "".join(sorted(s.address.lower()[2:] for s in self.signers))
        alloc = {a.lower()[2:]: {"balance": hex(BALANCE_WEI)} for a in (*self.funded, *(s.address for s in self.signers))}
        config = {"chainId": self.chain_id, **{f: 0 for f in FORKS}, "clique": {"period": self.period, "epoch": 30000}}
        return {"config": config, "nonce": "0x0", "timestamp": "0x0", "gasLimit": hex(GAS_LIMIT), "difficulty": "0x1",
                # 32 bytes vanity, the initial signers, 65 bytes for the (absent) seal
                "extraData": "0x" + "00" * 32 + sealers + "00" * 65, "alloc": alloc}

    def _init_datadirs(self) -> None:
        geth = ensure_geth()
        genesis = self.directory / "genesis.json"
        genesis.write_text(json.dumps(self.genesis(), indent=1))
        (self.directory / "password.txt").write_text("devnet\n")
        for s in self.signers:
            d = self.datadir(s)
            (d / "geth").mkdir(parents=True, exist_ok=True)
            (d / "geth" / "nodekey").write_text(s.nodekey)
            # A keystore with light scrypt parameters: geth reads them from the file, unlocks in ms.
            ks = encrypt_key(s.key, "devnet", kdf="scrypt", iterations=16)
            (d / "keystore").mkdir(exist_ok=True)
            (d / "keystore" / f"{s.address.lower()[2:]}.json").write_text(json.dumps(ks))
            peers = ", ".join(f'"{o.enode}"' for o in self.signers if o is not s)
            (d / "config.toml").write_text(f"[Node.P2P]\nStaticNodes = [{peers}]\n")
            r = subprocess.run([str(geth), "init", "--datadir", str(d), str(genesis)], capture_output=True, text=True)
            if r.returncode != 0:
                raise NetworkError(f"geth init for {s.name} failed:\n{r.stderr[-2000:]}")

    # -- state file ---------------------------------------------------------------------------
    def save(self) -> None:
        state = {"chain_id": self.chain_id, "period": self.period, "funded": self.funded,
                 "signers": [asdict(s) for s in self.signers], "rpc_urls": self.urls}
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=1))

    @classmethod
    def load(cls, directory: Path) -> CliqueNetwork:
        directory = Path(directory).resolve()
        try:
            state = json.loads((directory / STATE_FILE).read_text())
        except OSError as e:
            raise NetworkError(f"no network in {directory}: {e}") from None
        return cls(directory, state["chain_id"], state["period"], [Signer(**s) for s in state["signers"]],
                   state["funded"])

    # -- processes ----------------------------------------------------------------------------
    def datadir(self, s: Signer) -> Path:
        return self.directory / s.name

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.signers]

    def argv(self, s: Signer, mine: bool = True) -> list[str]:
        prefix = ["ip", "netns", "exec", s.netns] if s.netns else []
        return [*prefix,
            str(GETH), "--config", str(self.datadir(s) / "config.toml"), "--datadir", str(self.datadir(s)),
            "--networkid", str(self.chain_id), "--port", str(s.p2p_port), "--nat", "none", "--nodiscover",
            "--netrestrict", f"{s.host.rsplit('.', 1)[0]}.0/24" if s.host != "127.0.0.1" else "127.0.0.0/8",
            "--http", "--http.addr", "0.0.0.0" if s.netns else s.host, "--http.port", str(s.http_port),
            "--http.api", "eth,net,web3,clique,txpool,admin,miner", "--authrpc.addr", "127.0.0.1", "--authrpc.port", str(s.auth_port),
            "--ipcdisable", "--syncmode", "full", "--gcmode", "archive", "--cache", "64",
            "--unlock", s.address, "--password", str(self.directory / "password.txt"), "--allow-insecure-unlock",
            *(["--mine"] if mine else []), "--miner.etherbase", s.address,
            # a private chain: any fee above zero is taken, the base fee falls towards 7 wei when idle
            "--miner.gasprice", "1", "--txpool.pricelimit", "1", "--miner.gaslimit", str(GAS_LIMIT),
            # room for a meter point operator registering thousands of meters from one account
            "--txpool.accountslots", "16384", "--txpool.globalslots", "32768", "--txpool.accountqueue", "1024",
            "--verbosity", "3",
        ]

    def log_file(self, s: Signer) -> Path:
        return self.datadir(s) / "geth.log"

    def is_running(self, i: int) -> bool:
        pid = self.signers[i].pid
        if pid is None:
            return False
        if (proc := self._children().get(pid)) is not None:  # our child: no /proc race right after exec
            return proc.poll() is None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        # the pid must still be this signer's geth (not a reused pid) and not a zombie
        return str(self.datadir(self.signers[i])).encode() in cmdline and stat.split(")")[-1].split()[0] != "Z"

    def start(self, i: int, wait: bool = True, mine: bool = True) -> None:
        s = self.signers[i]
        if self.is_running(i):
            return
        with self.log_file(s).open("a") as log:
            # its own session: `make network` returns while the signers go on
            proc = subprocess.Popen(self.argv(s, mine), stdout=subprocess.DEVNULL, stderr=log,
                                    start_new_session=True)
        s.pid = proc.pid
        self._children()[proc.pid] = proc
        self.save()
        if wait:
            self.wait_rpc(i)

    def start_all(self, timeout: float = 90.0) -> None:
        """Starts the signers one after the other, each sealing only once it holds the chain so
        far. Started together, each signer sealed its own block 1 at once, and with 3 signers none
        may seal block 2 after its own block 1 ("signed recently"): three forks, no block ever
        again (seen on a loaded machine). Connected at genesis and then sent block 1, a signer that
        has not synced yet discards it ("Syncing, discarded propagated block"); started after it,
        it syncs on the handshake (about 10 s, geth's forced sync cycle)."""
        n = len(self.signers)
        for i in range(n):
            self._start_once_more_if_it_died(i)
            if i > 0:
                self.wait_for_blocks(timeout=timeout, beyond=i - 1)  # peered and synced to block i
            self.web3(i, timeout=10).provider.make_request(RPCEndpoint("miner_start"), [])
            if i < n - 1:
                self.wait_for_blocks(timeout=timeout, beyond=i)  # its block i + 1 (the others signed too recently)
        self.wait_for_blocks(timeout=timeout)

    def _start_once_more_if_it_died(self, i: int) -> None:
        self.start(i, wait=False, mine=False)
        try:
            self.wait_rpc(i)
        except NetworkError as first:
            if self.is_running(i):  # running but silent: no second try helps
                raise
            # It died while starting (once in CI, a goroutine dump whose cause the log no longer
            # held): one more try on the same data directory, which geth left consistent.
            self.start(i, wait=False, mine=False)
            try:
                self.wait_rpc(i)
            except NetworkError as second:
                raise NetworkError(f"{second}\n(and on the first try) {first}") from None

    def stop(self, i: int, kill: bool = False) -> None:
        """SIGTERM (geth flushes its database) or SIGKILL (a crash or a pulled plug)."""
        s = self.signers[i]
        if self.is_running(i):
            os.kill(s.pid, signal.SIGKILL if kill else signal.SIGTERM)
            deadline = time.time() + 30
            while self.is_running(i) and time.time() < deadline:
                self._reap(s.pid)
                time.sleep(0.1)
            if self.is_running(i):
                os.kill(s.pid, signal.SIGKILL)
            self._reap(s.pid)
        s.pid = None
        self.save()

    def stop_all(self) -> None:
        for i in range(len(self.signers)):
            self.stop(i)

    def _children(self) -> dict[int, subprocess.Popen]:
        if not hasattr(self, "_procs"):
            self._procs = {}
        return self._procs

    def _reap(self, pid: int) -> None:
        proc = self._children().get(pid)
        if proc is not None and proc.poll() is not None:
            del self._children()[pid]

    # -- partitions (loopback: by dropping peers; the signers keep running) --------------------
    def partition(self, *sides: list[int]) -> None:
        """Cuts the links between the given sides (lists of signer indexes): each signer drops
        the peers not on its side, static ones included, so nobody redials across."""
        side_of = {i: n for n, side in enumerate(sides) for i in side}
        for i in range(len(self.signers)):
            for j, o in enumerate(self.signers):
                if j != i and side_of.get(i) != side_of.get(j):
                    self.web3(i).provider.make_request("admin_removePeer", [o.enode])

    def heal(self) -> None:
        for i in range(len(self.signers)):
            if self.is_running(i):
                for j, o in enumerate(self.signers):
                    if j != i:
                        self.web3(i).provider.make_request("admin_addPeer", [o.enode])

    def sealer(self, i: int, block: int) -> str:
        """The address of the signer that sealed `block` in signer i's view."""
        return self.web3(i).provider.make_request("clique_getSigner", [hex(block)])["result"]

    # -- clients and readiness ----------------------------------------------------------------
    def web3(self, i: int, timeout: float = 10.0) -> Web3:
        w3 = Web3(Web3.HTTPProvider(self.signers[i].url, request_kwargs={"timeout": timeout}))
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)  # Clique's 97-byte extraData
        return w3

    def wait_rpc(self, i: int, timeout: float = 60.0) -> None:
        s, deadline = self.signers[i], time.time() + timeout
        w3 = self.web3(i, timeout=2)
        while True:
            if not self.is_running(i):
                raise NetworkError(f"{s.name} exited; {self.log_file(s)}:\n" + exit_reason(self.log_file(s)))
            try:
                if w3.eth.block_number >= 0:
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                if time.time() > deadline:
                    raise NetworkError(
                        f"{s.name} did not answer at {s.url} in {timeout} s; see {self.log_file(s)}") from None
                time.sleep(0.2)

    def head(self, i: int) -> int | None:
        try:
            return self.web3(i, timeout=2).eth.block_number
        except Exception:
            return None

    def wait_for_blocks(self, timeout: float = 90.0, beyond: int = 0) -> int:
        """Until every running signer is peered with every other running one, the chain has grown
        past `beyond`, and all hold the same block at the lowest head (not a fork each); returns
        that head."""
        running = [i for i in range(len(self.signers)) if self.is_running(i)]
        deadline = time.time() + timeout
        forks = None
        while True:
            try:
                heads = [self.web3(i, timeout=2).eth.block_number for i in running]
                peers = [self.web3(i, timeout=2).net.peer_count for i in running]
                if min(heads) > beyond and all(p >= len(running) - 1 for p in peers):
                    forks = len({bytes(self.web3(i, timeout=2).eth.get_block(min(heads))["hash"]) for i in running})
                    if forks == 1:
                        return min(heads)
            except Exception:
                heads, peers, forks = None, None, None
            if time.time() > deadline:
                raise NetworkError(f"no blocks past {beyond} on {len(running)} signer(s) in {timeout} s "
                                   f"(heads {heads}, peers {peers}, distinct blocks at the lowest head {forks}); "
                                   f"see {self.directory}/signer*/geth.log")
            time.sleep(0.3)
