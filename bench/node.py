"""Settlement node throughput, for 1,000 and 10,000 meters in one period.

Three nodes (quorum 2 of 3) run in this process against a fresh anvil, each with its HTTP API
(uvicorn) and settlement loop. Per size: readings signed by real meter keys are POSTed in
chunks of 500 to node 0 (timed: ingest readings/s, including batch signature verification in
rust_core and the SQLite archive) and to the others; then the period closes and we time
close -> batch committed on chain (build, sign, co-sign over HTTP, submit) and close -> final.
Baseline in the same run: per-reading EIP-712 recovery through eth-account (coincurve backend).
Prints one JSON object on its last line."""
from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import rust_core
import uvicorn
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.api import create_app  # noqa: E402
from node.archive import open_archive  # noqa: E402
from node.chain import Chain, contract_type  # noqa: E402
from node.peers import Peers  # noqa: E402
from node.settlement import SettlementNode  # noqa: E402

ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
PERIOD = 30
GRACE = 0.5
WINDOW = 2
SIZES = (1_000, 10_000)
Account.enable_unaudited_hdwallet_features()
MNEMONIC = "test test test test test test test test test test test junk"


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def key(i: int) -> bytes:
    return bytes(Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key)


class Sender:
    """Signs and sends transactions from one account without waiting for each receipt."""

    def __init__(self, w3: Web3, k: bytes) -> None:
        self.w3, self.acct = w3, Account.from_key(k)
        self.nonce = w3.eth.get_transaction_count(self.acct.address)

    def send(self, fn, gas: int = 400_000):
        tx = fn.build_transaction({"from": self.acct.address, "nonce": self.nonce, "gas": gas,
                                   "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1})
        self.nonce += 1
        return self.w3.eth.send_raw_transaction(self.acct.sign_transaction(tx).raw_transaction)

    def deploy(self, name: str, *args) -> str:
        ct = contract_type(name)
        c = self.w3.eth.contract(abi=ct["abi"], bytecode=ct["deploymentBytecode"]["bytecode"])
        h = self.send(c.constructor(*args), gas=8_000_000)
        return self.w3.eth.wait_for_transaction_receipt(h)["contractAddress"]


def serve(app, p: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=p, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread


def baseline_eth_account(domain: bytes, chain_id: int, ledger: str, readings, sigs) -> float:
    n = min(1000, len(readings))
    types = {"Reading": [{"name": "meterId", "type": "bytes32"}, {"name": "period", "type": "uint64"},
                         {"name": "timestamp", "type": "uint64"}, {"name": "importMwh", "type": "uint64"},
                         {"name": "exportMwh", "type": "uint64"}]}
    dom = {"name": "EnergySettlement", "version": "1", "chainId": chain_id, "verifyingContract": ledger}
    t = time.perf_counter()
    for r, s in zip(readings[:n], sigs[:n]):
        msg = {"meterId": r[0], "period": r[1], "timestamp": r[2], "importMwh": r[3], "exportMwh": r[4]}
        Account.recover_message(encode_typed_data(dom, types, msg), signature=s)
    return n / (time.perf_counter() - t)


def run_size(n_meters: int, workdir: Path) -> dict:
    anvil_port = port()
    anvil = subprocess.Popen([str(ANVIL), "--hardfork", "paris", "--port", str(anvil_port), "--silent",
                              "--gas-limit", "3000000000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers, threads, nodes = [], [], []
    try:
        rpc = f"http://127.0.0.1:{anvil_port}"
        w3 = Web3(Web3.HTTPProvider(rpc))
        while not w3.is_connected():
            time.sleep(0.1)
        admin = Sender(w3, key(0))
        registry = admin.deploy("MeterRegistry", admin.acct.address)
        ledger = admin.deploy("PeriodLedger", registry, PERIOD, WINDOW)
        reg = w3.eth.contract(address=registry, abi=contract_type("MeterRegistry")["abi"])
        admin.send(reg.functions.grantRole(reg.functions.METER_OPERATOR_ROLE().call(), admin.acct.address))
        op_keys = [key(1 + i) for i in range(3)]
        for k in op_keys:
            admin.send(reg.functions.addOperator(Account.from_key(k).address))
        w3.eth.wait_for_transaction_receipt(admin.send(reg.functions.setQuorum(2)))
        group = rust_core.keccak256(b"bench-group")
        start = int(time.time()) // PERIOD
        meters = [(rust_core.keccak256(f"sml:{i:012x}".encode()), secrets.token_bytes(32)) for i in range(n_meters)]
        t = time.perf_counter()
        last = None
        w3.provider.make_request("evm_setAutomine", [False])  # all registrations in one block
        for mid, mk in meters:
            last = admin.send(reg.functions.registerMeter(mid, Web3.to_checksum_address(rust_core.address_of(mk)), 0,
                                                         group, start, 2**64 - 1, 0, 0))
        w3.provider.make_request("evm_mine", [])
        w3.provider.make_request("evm_setAutomine", [True])
        assert w3.eth.wait_for_transaction_receipt(last, timeout=600)["status"] == 1
        register_s = time.perf_counter() - t
        print(f"{n_meters} meters registered in {register_s:.1f} s", file=sys.stderr, flush=True)

        ports = [port() for _ in op_keys]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for i, k in enumerate(op_keys):
            node = SettlementNode(Chain(rpc, registry, ledger, k), open_archive(f"sqlite:///{workdir}/n{n_meters}-{i}.db"),
                                  Peers(tuple(u for j, u in enumerate(urls) if j != i)), grace_seconds=GRACE,
                                  takeover_seconds=2.0, poll_seconds=0.1, name=f"node{i}")
            nodes.append(node)
            server, thread = serve(create_app(node), ports[i])
            servers.append(server)
            threads.append(thread)
        domain = nodes[0].domain

        while time.time() % PERIOD > 2:  # start at the beginning of a period
            time.sleep(0.1)
        ts = int(time.time())
        p = ts // PERIOD
        readings = [(mid, p, ts, 1_000_000 + i, i) for i, (mid, _) in enumerate(meters)]
        sigs = rust_core.sign_readings(domain, readings, [mk for _, mk in meters])
        body = [{"meter_id": "0x" + r[0].hex(), "period": r[1], "timestamp": r[2], "import_mwh": r[3],
                 "export_mwh": r[4], "signature": "0x" + s.hex(), "import_wh": f"{r[3] // 1000}.{r[3] % 1000:03d}",
                 "export_wh": f"{r[4] // 1000}.{r[4] % 1000:03d}", "raw_frame": "AQI=", "protocol": "sml"}
                for r, s in zip(readings, sigs)]
        chunks = [body[i:i + 500] for i in range(0, len(body), 500)]
        with httpx.Client(timeout=60) as client:
            t = time.perf_counter()
            for c in chunks:
                assert client.post(urls[0] + "/v1/readings", json={"readings": c}).status_code == 200
            ingest_s = time.perf_counter() - t
            for u in urls[1:]:
                for c in chunks:
                    assert client.post(u + "/v1/readings", json={"readings": c}).status_code == 200
        if time.time() >= (p + 1) * PERIOD:
            raise RuntimeError("delivery outlasted the period; raise PERIOD")
        for node in nodes:
            node.start()
        ledger_c = w3.eth.contract(address=ledger, abi=contract_type("PeriodLedger")["abi"])
        closes_at = (p + 1) * PERIOD + GRACE
        committed = final = None
        while final is None:
            status = ledger_c.functions.getBatch(p, group).call()[5]
            now = time.time()
            if status >= 1 and committed is None:
                committed = now
            if status == 2:
                final = now
            if now > closes_at + 120:
                raise RuntimeError(f"period {p} not final after 120 s (status {status})")
            time.sleep(0.02)
        return {
            "meters": n_meters,
            "ingest_per_s": round(n_meters / ingest_s),
            "close_to_commit_s": round(committed - closes_at, 3),
            "close_to_final_s": round(final - closes_at, 3),
            "register_meters_s": round(register_s, 1),
            "baseline_eth_account_verify_per_s": round(baseline_eth_account(domain, w3.eth.chain_id, ledger, readings, sigs)),
        }
    finally:
        for node in nodes:
            node.stop()
        for s in servers:
            s.should_exit = True
        for t in threads:
            t.join(10)
        for node in nodes:
            node.archive.close()
        anvil.terminate()
        anvil.wait(10)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-node-"))
    try:
        results = {}
        for n in SIZES:
            r = run_size(n, workdir)
            print(f"{n} meters: {r}", flush=True)
            results[n] = r
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = {
        "period_seconds": PERIOD, "grace_seconds": GRACE, "challenge_window_s": WINDOW, "quorum": "2 of 3",
        "close_is": "period end + grace (when the nodes close the period)",
    }
    for n, r in results.items():
        out[f"ingest_per_s_{n}"] = r["ingest_per_s"]
        out[f"close_to_commit_{n}_s"] = r["close_to_commit_s"]
        out[f"close_to_final_{n}_s"] = r["close_to_final_s"]
        out[f"baseline_eth_account_verify_per_s_{n}"] = r["baseline_eth_account_verify_per_s"]
    out["goal_close_to_commit_10000_under_5_s"] = out.get("close_to_commit_10000_s", 1e9) < 5
    print(json.dumps(out))


if __name__ == "__main__":
    main()
