"""Three settlement nodes (quorum 2 of 3) in this process against a fresh anvil, each with its
HTTP API (uvicorn) and settlement loop, and meters registered with real keys: what bench/node.py
and bench/soak.py run on."""
from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import uvicorn
from eth_account import Account
from web3 import Web3
from web3.types import RPCEndpoint

import rust_core
from devnet.ports import free_port
from node.api import create_app
from node.archive import Archive, open_archive
from node.chain import Chain
from node.peers import Peers
from node.settlement import SettlementNode
from scripts._deployment import NetworkSpec, Web3Transactor, contract_at, deploy, group_id
from scripts._processes import Anvil, dev_key


def serve(app, p: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=p, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread


def reading_entry(r: tuple, sig: bytes) -> dict:
    """The wire entry of a reading (meter_id, period, ts, import, export) and its signature."""
    return {"meter_id": "0x" + r[0].hex(), "period": r[1], "timestamp": r[2], "import_mwh": r[3],
            "export_mwh": r[4], "signature": "0x" + sig.hex(), "import_wh": f"{r[3] // 1000}.{r[3] % 1000:03d}",
            "export_wh": f"{r[4] // 1000}.{r[4] % 1000:03d}", "raw_frame": "AQI=", "protocol": "sml"}


class Network:
    def __init__(self, n_meters: int, workdir: Path, period: int, window: int, grace: float,
                 takeover: float = 2.0, poll: float = 0.1) -> None:
        self.period, self.window, self.grace, self.takeover, self.poll = period, window, grace, takeover, poll
        self.workdir = workdir
        self.anvil = Anvil("--gas-limit", "3000000000")
        self.servers: list[uvicorn.Server | None] = []
        self.threads: list[threading.Thread | None] = []
        self.nodes: list[SettlementNode | None] = []
        self.archives: list[Archive] = []
        try:
            self._deploy(n_meters)
        except BaseException:
            self.anvil.stop()
            raise

    def _deploy(self, n_meters: int) -> None:
        w3 = self.w3 = self.anvil.w3
        admin = Web3Transactor(w3, dev_key(0))
        self.op_keys = [dev_key(1 + i) for i in range(3)]
        dep = deploy(admin, NetworkSpec(self.period, self.window, 2,
                                        tuple(Account.from_key(k).address for k in self.op_keys), (admin.address,)))
        self.registry, self.ledger = dep.registry, dep.ledger
        self.group = group_id("bench-group")
        start = int(time.time()) // self.period
        self.meters = [(rust_core.keccak256(f"sml:{i:012x}".encode()), secrets.token_bytes(32))
                       for i in range(n_meters)]
        t = time.perf_counter()
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])  # all registrations in one block
        last = None
        for mid, mk in self.meters:
            last = admin.transact("MeterRegistry", self.registry, "registerMeter", mid,
                                  Web3.to_checksum_address(rust_core.address_of(mk)), 0, self.group, start,
                                  2**64 - 1, 0, 0, gas=400_000, wait=False)
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
        assert last is not None and w3.eth.wait_for_transaction_receipt(last, timeout=600)["status"] == 1
        self.register_s = time.perf_counter() - t
        self.ledger_contract = contract_at(w3, "PeriodLedger", self.ledger)
        self.ports = [free_port() for _ in self.op_keys]
        self.urls = [f"http://127.0.0.1:{p}" for p in self.ports]
        for i in range(3):
            self.archives.append(open_archive(f"sqlite:///{self.workdir}/n{n_meters}-{i}.db"))
            self.nodes.append(None)
            self.servers.append(None)
            self.threads.append(None)
            self.up(i, run_loop=False)
        self.domain = self.node(0).domain

    def node(self, i: int) -> SettlementNode:
        node = self.nodes[i]
        assert node is not None, f"node {i} is down"
        return node

    def up(self, i: int, run_loop: bool = True) -> None:
        """Node i with its API on its port (a restart: a new SettlementNode on the same archive)."""
        node = SettlementNode(Chain(self.anvil.url, self.registry, self.ledger, self.op_keys[i]), self.archives[i],
                              Peers(tuple(u for j, u in enumerate(self.urls) if j != i)), grace_seconds=self.grace,
                              takeover_seconds=self.takeover, poll_seconds=self.poll, name=f"node{i}")
        self.nodes[i] = node
        self.servers[i], self.threads[i] = serve(create_app(node), self.ports[i])
        if run_loop:
            node.start()

    def down(self, i: int) -> None:
        node, server, thread = self.nodes[i], self.servers[i], self.threads[i]
        if node is not None:
            node.stop()
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(10)
        self.nodes[i] = self.servers[i] = self.threads[i] = None

    def start_loops(self) -> None:
        for node in self.nodes:
            if node is not None:
                node.start()

    def batch(self, p: int) -> tuple:
        return tuple(self.ledger_contract.functions.getBatch(p, self.group).call())

    def close(self) -> None:
        for i in range(3):
            self.down(i)
        for a in self.archives:
            a.close()
        self.anvil.stop()

