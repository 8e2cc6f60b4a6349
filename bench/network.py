"""Settlement on the 3-signer Clique network (geth v1.13.15, devnet/), for 1,000 and 10,000 meters
in one group: period close to batch committed and to final, in seconds and in blocks, and the
share of the block gas limit the settlement's transactions take.

Three nodes (quorum 2 of 3) run in this process, each with its HTTP API and settlement loop and
each talking to its own validator, at 2 confirmations. Per size: meters registered (as `ape run
register` does: registerMeters transactions of 45% of the block gas limit each), readings signed by real meter keys
delivered to every node within one period; then the period closes (period end + grace) and
we watch the ledger on validator 0.

Run: .venv/bin/python bench/network.py [--quick]   (--quick: 20 meters, 1 s blocks, 6 s
periods, well under a minute, the same JSON keys; the _10000_ keys are null then). Needs geth
(`make geth`; built here if missing). Prints one JSON object on its last line."""
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is sys.path[0], where bench/node.py would shadow the node package:
# the repository root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import json
import secrets
import shutil
import signal
import tempfile
import threading
import time
from decimal import Decimal
from typing import NamedTuple

import httpx
import uvicorn
from eth_account import Account
from web3 import Web3

import rust_core
from devnet.clique import GAS_LIMIT, CliqueNetwork
from devnet.ports import free_port
from node.api import create_app
from node.archive import open_archive
from node.chain import Chain, ChainOptions
from node.peers import Peers
from node.settlement import SettlementNode
from rust_core.wire import Reading, SignedReading, meter_label_id
from scripts._deployment import MeterRow, NetworkSpec, Web3Transactor, contract_at, deploy, group_id, register
from scripts._processes import dev_key

GRACE = 0.5
CONFIRMATIONS = 2
STATUS_PENDING, STATUS_FINAL = 1, 2


class Sizes(NamedTuple):
    meters: tuple[int, ...]
    block_period: int  # Clique period, seconds
    period_seconds: int  # long enough to deliver the largest size within one period
    window: int  # challenge window, seconds
    deadline_s: float  # for each stage (registering, settling the period) before it counts as hung


FULL = Sizes((1_000, 10_000), 2, 40, 2, 1800)
QUICK = Sizes((20,), 1, 6, 1, 90)  # inside tests/test_benchmarks.py's 300 s


def serve(stack: contextlib.ExitStack, app, port: int) -> None:
    """The node's HTTP API on a thread, shut down when `stack` closes."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    stack.callback(thread.join, 10)
    stack.callback(setattr, server, "should_exit", True)
    while not server.started:
        time.sleep(0.05)


def register_meters(admin: Web3Transactor, w3: Web3, dep, group: str, start: int, meters) -> dict:
    """The meters registered as a meter point operator does (`ape run register`: registerMeters,
    as many a transaction as 45% of the block gas limit holds), waited for until the nodes see them."""
    first = w3.eth.block_number
    t = time.perf_counter()
    rows = [MeterRow(label, Web3.to_checksum_address(rust_core.address_of(mk)), "consumption", group, start, 0, 0)
            for label, _, mk in meters]
    register(admin, dep, rows)
    last = w3.eth.block_number
    gas = 0
    for n in range(first + 1, last + 1):  # nothing else is sent meanwhile
        for tx in w3.eth.get_block(n)["transactions"]:
            gas += int(w3.eth.get_transaction_receipt(tx)["gasUsed"])  # type: ignore[arg-type]  # hashes
    while w3.eth.block_number < last + CONFIRMATIONS:  # the nodes see them only that deep
        time.sleep(0.2)
    return {"register_meters_s": round(time.perf_counter() - t, 1), "register_meters_blocks": last - first,
            "register_gas_per_meter": round(gas / len(rows))}


def deliver(urls: list[str], domain: bytes, meters, period: int) -> None:
    ts = int(time.time())
    readings = [(mid, period, ts, 1_000_000 + i, i) for i, (mid, _) in enumerate(meters)]
    sigs = rust_core.sign_readings(domain, readings, [mk for _, mk in meters])
    body = [SignedReading(**Reading._make(r)._asdict(), signature=s, import_wh=Decimal(r[3]) / 1000,
                          export_wh=Decimal(r[4]) / 1000, raw_frame=b"frame", protocol="sml").to_wire()
            for r, s in zip(readings, sigs)]
    with httpx.Client(timeout=120) as client:
        for u in urls:
            for i in range(0, len(body), 500):
                r = client.post(u + "/v1/readings", json={"readings": body[i:i + 500]})
                assert r.status_code == 200, r.text


def run_size(n_meters: int, workdir: Path, cfg: Sizes) -> dict:
    with contextlib.ExitStack() as stack:  # everything started is stopped in reverse order
        net = CliqueNetwork.create(workdir / f"clique-{n_meters}", 3, period=cfg.block_period)
        stack.callback(net.stop_all)
        net.start_all()
        print(f"{n_meters} meters: network up at block {net.head(0)}", file=sys.stderr, flush=True)
        return measure(stack, net, n_meters, workdir, cfg)


def measure(stack: contextlib.ExitStack, net: CliqueNetwork, n_meters: int, workdir: Path, cfg: Sizes) -> dict:
    w3 = net.web3(0, timeout=60)
    admin = Web3Transactor(w3, dev_key(0))
    op_keys = [dev_key(1 + i) for i in range(3)]
    dep = deploy(admin, NetworkSpec(cfg.period_seconds, cfg.window, 2,
                                    tuple(Account.from_key(k).address for k in op_keys), (admin.address,)))
    group = group_id("bench-group")
    start = int(time.time()) // cfg.period_seconds
    labelled = [(label, meter_label_id(label), secrets.token_bytes(32))
                for label in (f"sml:{i:012x}" for i in range(n_meters))]
    result = {"meters": n_meters, **register_meters(admin, w3, dep, "bench-group", start, labelled)}
    meters = [(mid, mk) for _, mid, mk in labelled]
    print(f"{n_meters} meters registered: {result}", file=sys.stderr, flush=True)

    urls = [f"http://127.0.0.1:{free_port()}" for _ in op_keys]
    domain = b""
    for i, k in enumerate(op_keys):  # node i on validator i
        chain = Chain(net.urls[i], dep.registry, dep.ledger, k, ChainOptions(confirmations=CONFIRMATIONS),
                      chain_id=dep.chain_id, first_block=dep.first_block)
        archive = open_archive(f"sqlite:///{workdir}/n{n_meters}-{i}.db")
        stack.callback(archive.close)
        node = SettlementNode(chain, archive, Peers(tuple(u for u in urls if u != urls[i])), grace_seconds=GRACE,
                              takeover_seconds=2.0, poll_seconds=0.2, name=f"node{i}")
        serve(stack, create_app(node), int(urls[i].rsplit(":", 1)[1]))
        node.start()
        stack.callback(node.stop)
        domain = node.domain
    while time.time() % cfg.period_seconds > min(2, cfg.period_seconds / 4):  # at the start of a period
        time.sleep(0.1)
    p = int(time.time()) // cfg.period_seconds
    deliver(urls, domain, meters, p)
    if time.time() >= (p + 1) * cfg.period_seconds:
        raise RuntimeError("delivery outlasted the period; lengthen period_seconds")

    ledger = contract_at(w3, "PeriodLedger", dep.ledger)
    closes_at = (p + 1) * cfg.period_seconds + GRACE
    head_at_close = committed = final = None
    while committed is None or final is None:
        now = time.time()
        if head_at_close is None and now >= closes_at:
            head_at_close = w3.eth.block_number
        status = ledger.functions.getBatch(p, group).call()[5]
        if status >= STATUS_PENDING and committed is None:
            committed = now
        if status == STATUS_FINAL:
            final = now
        if now > closes_at + cfg.deadline_s:
            raise RuntimeError(f"period {p} not final after {cfg.deadline_s:g} s (status {status})")
        time.sleep(0.05)
    submitted = ledger.events.BatchSubmitted().get_logs(from_block=head_at_close)[0]
    finalized = ledger.events.BatchFinalized().get_logs(from_block=head_at_close)[0]
    submit_gas = w3.eth.get_transaction_receipt(submitted.transactionHash)["gasUsed"]
    finalize_gas = w3.eth.get_transaction_receipt(finalized.transactionHash)["gasUsed"]
    return result | {
        "close_to_commit_s": round(committed - closes_at, 3),
        "close_to_commit_blocks": submitted.blockNumber - head_at_close,
        "close_to_final_s": round(final - closes_at, 3),
        "close_to_final_blocks": finalized.blockNumber - head_at_close,
        "submit_gas": submit_gas, "finalize_gas": finalize_gas,
        "settlement_gas_share_of_block_limit": round((submit_gas + finalize_gas) / GAS_LIMIT, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, under a minute, the same JSON keys")
    quick = parser.parse_args().quick
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the signers and nodes are stopped
    cfg = QUICK if quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="bench-network-"))
    try:
        results = {}
        for n in cfg.meters:
            results[str(n)] = run_size(n, workdir, cfg)
            print(f"{n} meters: {results[str(n)]}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    largest = results[str(cfg.meters[-1])]
    big = results.get("10000", {})
    out = {
        "quick": quick, "sizes": list(cfg.meters), "engine": "geth v1.13.15 clique, 3 signers, loopback",
        "block_period_s": cfg.block_period, "block_gas_limit": GAS_LIMIT, "confirmations": CONFIRMATIONS,
        "period_seconds": cfg.period_seconds, "grace_seconds": GRACE, "challenge_window_s": cfg.window,
        "quorum": "2 of 3", "close_is": "period end + grace (when the nodes close the period)",
        "close_to_commit_10000_blocks": big.get("close_to_commit_blocks"),
        "close_to_commit_10000_s": big.get("close_to_commit_s"),
        "close_to_final_10000_s": big.get("close_to_final_s"),
        "goal_10000_committed_within_3_blocks": big["close_to_commit_blocks"] <= 3 if big else None,
        # the figures of the largest size; every size's under by_size
        "close_to_commit_blocks": largest["close_to_commit_blocks"],
        "close_to_commit_s": largest["close_to_commit_s"],
        "close_to_final_s": largest["close_to_final_s"],
        "settlement_gas_share_of_block_limit": largest["settlement_gas_share_of_block_limit"],
        "by_size": results,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
