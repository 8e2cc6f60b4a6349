"""rust_core throughput: batch sign, batch verify (digest + recovery + compare) and Merkle-sum tree
build at 1,000 / 10,000 / 100,000 readings, beside eth-account doing the same work one reading at
a time, and the libsecp256k1 limit (coincurve raw recovery on one core x cores).

Run: .venv/bin/python bench/core.py [--quick]   (--quick: 100 / 200 / 400 readings, a few seconds,
the same JSON keys). Last line: one JSON object.
"""
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is sys.path[0], where bench/node.py would shadow the node package:
# the repository root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import time
from typing import NamedTuple

import coincurve
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.backends import get_backend
from eth_utils import keccak

import rust_core
from rust_core import reference as ref


class Sizes(NamedTuple):
    readings: tuple[int, ...]  # batch sizes for rust_core
    baseline: int  # readings for the one-at-a-time eth-account baseline
    limit: int  # recoveries for the libsecp256k1 limit


FULL = Sizes((1_000, 10_000, 100_000), 2_000, 4_000)
QUICK = Sizes((100, 200, 400), 100, 200)
KEY_POOL = 1_000
CORES = os.cpu_count() or 1
DOMAIN = ref.Domain(31337, bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3"))
SEP = DOMAIN.separator()


def timed(repeats: int, fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process over all its threads) of the fastest run."""
    runs = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(runs)


def best_of(repeats: int, fn) -> float:
    return timed(repeats, fn)[0]


def make_inputs(n: int) -> tuple[list, list, list]:
    keys = [keccak(text=f"bench-key:{i}") for i in range(KEY_POOL)]
    ids = sorted(keccak(text=f"bench-meter:{i}") for i in range(n))
    readings = [(mid, 1_888_889, 1_700_000_100 + i % 900, 5_000_000 + i, 1_000 + i) for i, mid in enumerate(ids)]
    return readings, [keys[i % KEY_POOL] for i in range(n)], keys


def leaves_of(readings: list, sigs: list) -> list:
    return [(*r, r[1] - 1, r[3] - 1_000, r[4] - 500, s) for r, s in zip(readings, sigs)]


def eth_account_rates(readings: list, keys: list) -> tuple[float, float]:
    """One reading at a time: EIP-712 sign; encode + recover + compare."""
    domain = DOMAIN.as_dict()
    msgs = [ref.Reading(*r).message() for r in readings]
    signed: list[bytes] = []
    t_sign = best_of(1, lambda: signed.extend(
        bytes(Account.sign_typed_data(k, domain, ref._READING_TYPES, m).signature) for m, k in zip(msgs, keys)))
    addresses = [Account.from_key(k).address for k in keys]

    def verify() -> None:
        for m, s, a in zip(msgs, signed, addresses):
            assert Account.recover_message(encode_typed_data(domain, ref._READING_TYPES, m), signature=s) == a

    t_verify = best_of(1, verify)
    return len(readings) / t_sign, len(readings) / t_verify


def reference_tree_seconds(leaves: list) -> float:
    ref_leaves = [ref.Leaf(ref.Reading(*t[:5]), t[5], t[6], t[7], t[8]) for t in leaves]
    return best_of(1, lambda: ref.build_levels(ref_leaves))


def coincurve_recover_per_core(n: int) -> tuple[float, float]:
    """libsecp256k1 raw ECDSA public key recovery on one core (no hashing, no address):
    (per wall second, per CPU second)."""
    key = coincurve.PrivateKey(keccak(text="limit"))
    digests = [keccak(i.to_bytes(4, "big")) for i in range(n)]
    sigs = [key.sign_recoverable(d, hasher=None) for d in digests]
    wall, cpu = timed(2, lambda: [coincurve.PublicKey.from_signature_and_message(s, d, hasher=None)
                                  for s, d in zip(sigs, digests)])
    return n / wall, n / cpu


def measure(n: int, repeats: int, limit_n: int, out: dict) -> dict:
    """Sign, verify and tree figures at n readings; with `limit_n`, also the libsecp256k1 limit
    (measured right beside the verify it is compared with) into `out`."""
    readings, keys, _ = make_inputs(n)
    signers = [rust_core.address_of(k) for k in keys]
    t_sign = best_of(repeats, lambda: rust_core.sign_readings(SEP, readings, keys))
    sigs = rust_core.sign_readings(SEP, readings, keys)
    failures: list = []
    limit_before = coincurve_recover_per_core(limit_n) if limit_n else (0.0, 0.0)
    t_verify, cpu_verify = timed(repeats,
                                 lambda: failures.append(rust_core.verify_readings(SEP, readings, sigs, signers)))
    assert all(f == [] for f in failures), "benchmark signatures must all verify"
    if limit_n:
        limit_after = coincurve_recover_per_core(limit_n)
        limit_core = (limit_before[0] + limit_after[0]) / 2
        limit_core_cpu = (limit_before[1] + limit_after[1]) / 2
        out["coincurve_recover_per_s_one_core"] = round(limit_core)
        out["verify_limit_per_s"] = round(limit_core * CORES)
        out["verify_per_cpu_s"] = round(n / cpu_verify)
        out["coincurve_recover_per_cpu_s"] = round(limit_core_cpu)
        print(f"libsecp256k1 limit: {limit_core:,.0f} recoveries/s on one core x {CORES} = "
              f"{limit_core * CORES:,.0f}/s; per CPU second: coincurve {limit_core_cpu:,.0f}, "
              f"rust_core verify {n / cpu_verify:,.0f}")
    leaves = leaves_of(readings, sigs)
    t_tree = best_of(repeats, lambda: rust_core.MerkleSumTree(leaves))
    print(f"n={n:>7,}: sign {n / t_sign:>10,.0f}/s  verify {n / t_verify:>10,.0f}/s  "
          f"tree {t_tree * 1000:8.1f} ms ({n / t_tree:,.0f} leaves/s)")
    return {"sign_per_s": round(n / t_sign), "verify_per_s": round(n / t_verify),
            "tree_s": round(t_tree, 4), "tree_per_s": round(n / t_tree)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds, the same JSON keys")
    quick = parser.parse_args().quick
    cfg = QUICK if quick else FULL
    sizes, baseline_n = cfg.readings, cfg.baseline
    # Other processes on the same cores make every figure lower; the load average says how busy it was.
    out: dict = {"quick": quick, "sizes": list(sizes), "cores": CORES, "eth_keys_backend": type(get_backend()).__name__,
                 "loadavg_1m_start": os.getloadavg()[0]}
    by_size: dict[str, dict] = {}

    for n in sizes:
        by_size[str(n)] = measure(n, 3 if n < sizes[-1] else 2, cfg.limit if n == sizes[-1] else 0, out)

    readings, keys, _ = make_inputs(baseline_n)
    eth_sign, eth_verify = eth_account_rates(readings, keys)
    t_ref_tree = reference_tree_seconds(leaves_of(readings, rust_core.sign_readings(SEP, readings, keys)))
    out["eth_account_n"] = baseline_n
    out["eth_account_sign_per_s"] = round(eth_sign)
    out["eth_account_verify_per_s"] = round(eth_verify)
    out["reference_tree_per_s"] = round(baseline_n / t_ref_tree)
    print(f"eth-account ({out['eth_keys_backend']}), one at a time, n={baseline_n:,}: "
          f"sign {eth_sign:,.0f}/s  verify {eth_verify:,.0f}/s; Python reference tree {baseline_n / t_ref_tree:,.0f} leaves/s")

    largest = by_size[str(sizes[-1])]  # the headline figures; every size's under by_size
    out["sign_per_s"] = largest["sign_per_s"]
    out["verify_per_s"] = largest["verify_per_s"]
    out["tree_per_s"] = largest["tree_per_s"]
    out["verify_fraction_of_limit"] = round(out["verify_per_s"] / out["verify_limit_per_s"], 3)
    # Per CPU second: the same comparison, less disturbed by other processes on the cores.
    out["verify_cpu_fraction_of_limit"] = round(out["verify_per_cpu_s"] / out["coincurve_recover_per_cpu_s"], 3)
    out["verify_speedup_vs_eth_account"] = round(out["verify_per_s"] / eth_verify, 1)
    out["sign_speedup_vs_eth_account"] = round(out["sign_per_s"] / eth_sign, 1)
    out["tree_speedup_vs_reference"] = round(out["tree_per_s"] / out["reference_tree_per_s"], 1)
    out["loadavg_1m_end"] = os.getloadavg()[0]
    out["by_size"] = by_size
    print(json.dumps(out))


if __name__ == "__main__":
    main()
