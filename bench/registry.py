"""Meter registration at scale: batched registerMeters against one transaction per meter.

Per size (10,000 and 100,000 meters) on a fresh anvil at the 30M block gas limit that the Clique
devnet uses: the `register` script's own path (scripts/_deployment.register: reads what is
registered, estimates each batch, fills blocks to 90% of the gas limit, waits for each receipt),
then the baseline in the same run: one registerMeter transaction per meter, all queued at once
and packed into blocks up to the gas limit (the old script sent and awaited them one by one,
which is slower still). Gas per meter is the
gas of every block of the run over the meters it registered. Goal: 10,000 meters in under 10 s
(`register_10000_s`).

Run: .venv/bin/python bench/registry.py [--quick]   (--quick: 100 and 400 meters, seconds, the
same JSON keys; the _10000_ and _100000_ keys are null then). Prints one JSON object on its
last line."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.pop(0)  # this folder would shadow the repository's packages
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import secrets
import time

from eth_abi import encode as abi_encode
from eth_utils import function_abi_to_4byte_selector
from web3 import Web3
from web3.types import RPCEndpoint

from scripts._deployment import MeterRow, NetworkSpec, Web3Transactor, contract_at, deploy, register
from scripts._processes import Anvil, dev_key

GAS_LIMIT = 30_000_000
FULL = (10_000, 100_000)
QUICK = (100, 400)


def meter_rows(n: int, tag: str) -> list[MeterRow]:
    return [MeterRow(f"sml:{tag}{i:010x}", Web3.to_checksum_address(secrets.token_bytes(20)), "consumption",
                     f"group-{i % 8}", 10, 1_000 * i, 0) for i in range(n)]


def block_gas(w3: Web3, first: int) -> tuple[int, int]:
    """Gas and transactions of blocks first..head."""
    gas = txs = 0
    for n in range(first, w3.eth.block_number + 1):
        b = w3.eth.get_block(n)
        gas, txs = gas + b["gasUsed"], txs + len(b["transactions"])
    return gas, txs


def batched(w3: Web3, operator: Web3Transactor, dep, n: int) -> dict:
    rows = meter_rows(n, f"b{n}x")
    first = w3.eth.block_number + 1
    t = time.perf_counter()
    done = register(operator, dep, rows, progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    elapsed = time.perf_counter() - t
    assert len(done) == n
    gas, txs = block_gas(w3, first)
    return {"s": round(elapsed, 2), "meters_per_s": round(n / elapsed), "gas_per_meter": round(gas / n),
            "transactions": txs}


def one_per_meter(w3: Web3, operator: Web3Transactor, dep, n: int) -> dict:
    """All queued in the pool, then blocks mined until it is empty, each packed to the gas limit as
    a real chain packs them (anvil mining one block per transaction slows with the registry's
    size: thousands of blocks each rehashing a growing state)."""
    rows = meter_rows(n, f"s{n}x")
    first = w3.eth.block_number + 1
    t = time.perf_counter()
    last = None
    fn = contract_at(w3, "MeterRegistry", dep.registry).get_function_by_name("registerMeter")
    selector, types = function_abi_to_4byte_selector(fn.abi), [i["type"] for i in fn.abi["inputs"]]
    nonce, chain_id = w3.eth.get_transaction_count(operator.address), w3.eth.chain_id
    w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])
    try:
        for i, r in enumerate(rows):  # signed here, not through web3's builder: the client is not what is measured
            tx = {"to": dep.registry, "data": selector + abi_encode(types, r.register_args()), "gas": 200_000,
                  "nonce": nonce + i, "chainId": chain_id, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}
            last = w3.eth.send_raw_transaction(operator.account.sign_transaction(tx).raw_transaction)
        while w3.eth.get_transaction_count(operator.address, "pending") > w3.eth.get_transaction_count(operator.address):
            w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    finally:
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
    assert last is not None and w3.eth.wait_for_transaction_receipt(last, timeout=3600)["status"] == 1
    elapsed = time.perf_counter() - t
    gas, txs = block_gas(w3, first)
    assert txs == n
    return {"s": round(elapsed, 2), "meters_per_s": round(n / elapsed), "gas_per_meter": round(gas / n)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: proves the benchmark runs")
    args = ap.parse_args()
    sizes = QUICK if args.quick else FULL
    # base fee 0: the baseline packs 330 full blocks, which would raise a 1 gwei base fee past any
    # fee cap (register() itself stays under the gas target and keeps the base fee flat)
    anvil = Anvil("--gas-limit", str(GAS_LIMIT), "--block-base-fee-per-gas", "0")
    try:
        w3 = anvil.w3
        operator = Web3Transactor(w3, dev_key(0))
        dep = deploy(operator, NetworkSpec(900, 600, 1, (Web3Transactor(w3, dev_key(1)).address,),
                                           (operator.address,)))
        results: dict[int, dict] = {}
        for n in sizes:
            print(f"{n} meters, batched:", file=sys.stderr, flush=True)
            b = batched(w3, operator, dep, n)
            print(f"{n} meters, one transaction each:", file=sys.stderr, flush=True)
            s = one_per_meter(w3, operator, dep, n)
            results[n] = {"batched": b, "one_per_meter": s}
            print(f"  {results[n]}", file=sys.stderr, flush=True)
    finally:
        anvil.stop()

    def fig(n: int, which: str, key: str):
        return results[n][which][key] if n in results else None

    largest = max(results)
    out = {
        "quick": args.quick,
        "block_gas_limit": GAS_LIMIT,
        "sizes": {str(n): r for n, r in results.items()},
        "register_10000_s": fig(10_000, "batched", "s"),
        "register_10000_meters_per_s": fig(10_000, "batched", "meters_per_s"),
        "register_10000_transactions": fig(10_000, "batched", "transactions"),
        "baseline_register_10000_s": fig(10_000, "one_per_meter", "s"),
        "register_100000_s": fig(100_000, "batched", "s"),
        "register_100000_meters_per_s": fig(100_000, "batched", "meters_per_s"),
        "register_100000_transactions": fig(100_000, "batched", "transactions"),
        "baseline_register_100000_s": fig(100_000, "one_per_meter", "s"),
        "register_gas_per_meter": fig(largest, "batched", "gas_per_meter"),
        "baseline_gas_per_meter": fig(largest, "one_per_meter", "gas_per_meter"),
        "speedup_largest": round(fig(largest, "one_per_meter", "s") / fig(largest, "batched", "s"), 1),
        "goal_10000_under_10_s": fig(10_000, "batched", "s") < 10 if 10_000 in results else None,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
