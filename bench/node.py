"""Settlement node throughput, for 1,000 and 10,000 meters in one period.

Three nodes (quorum 2 of 3) run in this process against a fresh anvil, each with its HTTP API
(uvicorn) and settlement loop. Per size: readings signed by real meter keys are POSTed in
chunks of 500 to node 0 (timed: ingest readings/s, including batch signature verification in
rust_core and the SQLite archive) and to the others; then the period closes and we time
close -> batch committed on chain (build, sign, co-sign over HTTP, submit) and close -> final.
Baseline in the same run: per-reading EIP-712 recovery through eth-account (coincurve backend).

Run: .venv/bin/python bench/node.py [--quick]   (--quick: 20 meters and 4 s periods, a few
seconds, the same JSON keys). Prints one JSON object on its last line."""
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is sys.path[0], where bench/node.py would shadow the node package:
# the repository root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import secrets
import shutil
import tempfile
import threading
import time
from typing import NamedTuple

import httpx
import uvicorn
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3
from web3.types import RPCEndpoint

import rust_core
from node.api import create_app
from node.archive import open_archive
from node.chain import Chain
from node.peers import Peers
from node.settlement import SettlementNode
from scripts._deployment import NetworkSpec, Web3Transactor, contract_at, deploy, group_id
from scripts._processes import Anvil, dev_key, free_port

GRACE = 0.5


class Sizes(NamedTuple):
    meters: tuple[int, ...]
    period_seconds: int  # long enough to deliver the largest size within one period
    window: int  # challenge window, seconds


FULL = Sizes((1_000, 10_000), 30, 2)
QUICK = Sizes((20,), 4, 1)


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


def run_size(n_meters: int, workdir: Path, period: int, window: int) -> dict:
    anvil = Anvil("--gas-limit", "3000000000")
    servers, threads, nodes = [], [], []
    try:
        rpc, w3 = anvil.url, anvil.w3
        admin = Web3Transactor(w3, dev_key(0))
        op_keys = [dev_key(1 + i) for i in range(3)]
        dep = deploy(admin, NetworkSpec(period, window, 2, tuple(Account.from_key(k).address for k in op_keys),
                                        (admin.address,)))
        registry, ledger = dep.registry, dep.ledger
        group = group_id("bench-group")
        start = int(time.time()) // period
        meters = [(rust_core.keccak256(f"sml:{i:012x}".encode()), secrets.token_bytes(32)) for i in range(n_meters)]
        t = time.perf_counter()
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])  # all registrations in one block
        for mid, mk in meters:
            last = admin.transact("MeterRegistry", registry, "registerMeter", mid,
                                  Web3.to_checksum_address(rust_core.address_of(mk)), 0, group, start, 2**64 - 1, 0, 0,
                                  gas=400_000, wait=False)
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
        assert w3.eth.wait_for_transaction_receipt(last, timeout=600)["status"] == 1
        register_s = time.perf_counter() - t
        print(f"{n_meters} meters registered in {register_s:.1f} s", file=sys.stderr, flush=True)

        ports = [free_port() for _ in op_keys]
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

        while time.time() % period > min(2, period / 4):  # start at the beginning of a period
            time.sleep(0.1)
        ts = int(time.time())
        p = ts // period
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
        if time.time() >= (p + 1) * period:
            raise RuntimeError("delivery outlasted the period; lengthen period_seconds")
        for node in nodes:
            node.start()
        ledger_c = contract_at(w3, "PeriodLedger", ledger)
        closes_at = (p + 1) * period + GRACE
        committed: float | None = None
        final: float | None = None
        while committed is None or final is None:
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
        for thread in threads:
            thread.join(10)
        for node in nodes:
            node.archive.close()
        anvil.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds, the same JSON keys")
    quick = parser.parse_args().quick
    cfg = QUICK if quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="bench-node-"))
    try:
        results = {}
        for n in cfg.meters:
            r = run_size(n, workdir, cfg.period_seconds, cfg.window)
            print(f"{n} meters: {r}", flush=True)
            results[str(n)] = r
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    largest = results[str(cfg.meters[-1])]
    out = {
        "quick": quick, "sizes": list(cfg.meters),
        "period_seconds": cfg.period_seconds, "grace_seconds": GRACE, "challenge_window_s": cfg.window,
        "quorum": "2 of 3", "close_is": "period end + grace (when the nodes close the period)",
        # the figures of the largest size; every size's figures under by_size
        "ingest_per_s": largest["ingest_per_s"],
        "close_to_commit_s": largest["close_to_commit_s"],
        "close_to_final_s": largest["close_to_final_s"],
        "baseline_eth_account_verify_per_s": largest["baseline_eth_account_verify_per_s"],
        "goal_close_to_commit_10000_under_5_s": results["10000"]["close_to_commit_s"] < 5 if "10000" in results else None,
        "by_size": results,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
