"""Gas per settled reading: PeriodLedger (one co-signed batch header per period and group,
3-of-5 quorum, submit + finalize) at 100, 1,000 and 10,000 readings per batch, beside the naive
StromDAO-style NaiveLedger that writes every reading in its own transaction (measured in the
same run), the gas of each fraud proof against a 10,000-leaf batch, and the gas of a full data
availability reveal (challenge, then every leaf posted in chunks of REVEAL_CHUNK) per reading.

Run: .venv/bin/python bench/gas.py [--quick]  (starts its own anvil with the pinned paris
hardfork; --quick: batches of 6 / 12 / 24 readings, a few seconds, the same JSON keys, with
"quick": true and the real "sizes"). Prints a table, then one JSON object on its last line.
The tree and leaf builders are tests/contracts/settlement_builders.py, which depends on
rust_core only (not on the `node` package, which bench/node.py shadows here).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this folder is sys.path[0], where bench/node.py would shadow the node package:
# the repository root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
os.environ.setdefault("SOLCX_BINARY_PATH", str(ROOT / "tools" / "solc"))
os.environ["PATH"] = f"{ROOT / 'node_modules' / '.bin'}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"
sys.path.insert(0, str(ROOT / "tests" / "contracts"))  # the shared tree/leaf builders (no `node` import)

import ape  # noqa: E402
from ape.logging import logger as ape_logger  # noqa: E402
from eth_utils import keccak  # noqa: E402
from settlement_builders import (  # noqa: E402
    PERIOD_SECONDS,
    MeterSpec,
    SumTree,
    cosign,
    header_struct,
    leaf_struct,
    leaf_words,
    make_leaf,
    node_struct,
    ref,
)

from scripts._deployment import ApeTransactor, NetworkSpec, deploy  # noqa: E402

SIZES = (100, 1_000, 10_000)
QUICK_SIZES = (6, 12, 24)  # not powers of two: the largest has padding
NAIVE_READINGS = 40
WINDOW = 600
# leaves per reveal transaction: 256 leaves are about 90 KB of calldata, under geth's 128 KB
# transaction pool limit (anvil has none)
REVEAL_CHUNK = 256
QUICK_REVEAL_CHUNK = 5
U64 = 2**64


def is_paris(web3) -> bool:
    """Paris blocks have a base fee but no withdrawals (Shanghai) nor blob gas fields (Cancun)."""
    block = web3.eth.get_block("latest")
    return "baseFeePerGas" in block and "withdrawalsRoot" not in block and "excessBlobGas" not in block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny batches (a few seconds), same JSON keys")
    quick = parser.parse_args().quick
    ape_logger.set_level("WARNING")  # ape logs anvil's start and stop (at exit) to stdout: the JSON must end it
    sizes = QUICK_SIZES if quick else SIZES
    naive_readings = 4 if quick else NAIVE_READINGS
    with ape.networks.parse_network_choice("ethereum:local:foundry") as provider:
        chain, project = ape.chain, ape.project
        accts = ape.accounts.test_accounts
        admin, ops, meter_op, prover = accts[0], list(accts[1:6]), accts[6], accts[7]
        # the one deploy path (scripts/_deployment.py) that the scripts, the demo and the node tests use
        spec = NetworkSpec(PERIOD_SECONDS, WINDOW, 3, tuple(op.address for op in ops), (meter_op.address,))
        dep = deploy(ApeTransactor(admin), spec)
        registry, ledger = project.MeterRegistry.at(dep.registry), project.PeriodLedger.at(dep.ledger)
        naive = project.NaiveLedger.at(ApeTransactor(admin).deploy("NaiveLedger", dep.registry))
        domain = ref.Domain(chain.chain_id, ledger.address)
        op_keys = [bytes.fromhex(op.private_key[2:]) for op in ops[:3]]
        period = chain.pending_timestamp // PERIOD_SECONDS - 20

        def meters(n: int, prefix: str, group: bytes) -> list[MeterSpec]:
            ms = [MeterSpec(f"{prefix}{i}", group, active_from=period - 5) for i in range(n)]
            return sorted(ms, key=lambda m: m.meter_id)

        def leaves_of(ms, p, dom=domain):
            return [make_leaf(dom, m, p, 10_000 + 7 * i, 3 * i, m.active_from - 1, 0, 0) for i, m in enumerate(ms)]

        def submit(tree: SumTree, p: int, group: bytes, count=None):
            h = tree.header(p, group, count, epoch=registry.operatorEpoch())
            return ledger.submitBatch(header_struct(h), cosign(domain, h, op_keys), sender=ops[0])

        results: dict = {"hardfork_paris": is_paris(provider.web3), "quorum": "3-of-5", "quick": quick,
                         "sizes": list(sizes)}
        trees = {}
        for n, key in zip(sizes, SIZES):
            group = ref.group_id(f"bench:{n}")
            ms = meters(n, f"b{n}-", group)
            tree = SumTree.from_leaves(leaves_of(ms, period))
            trees[n] = (tree, ms, group)
            sub = submit(tree, period, group)
            chain.pending_timestamp += WINDOW
            fin = ledger.finalize(period, group, sender=ops[0])
            total = sub.gas_used + fin.gas_used
            results[f"gas_per_batch_{key}"] = total
            results[f"gas_per_reading_{key}"] = round(total / n, 2)
            print(f"batch {n:>6} readings: submit {sub.gas_used:>7} + finalize {fin.gas_used:>6} = {total:>7} gas,"
                  f" {total / n:8.2f} gas/reading")

        chunk = QUICK_REVEAL_CHUNK if quick else REVEAL_CHUNK
        for n, key in zip(sizes, SIZES):
            tree = trees[n][0]
            group = ref.group_id(f"bench:reveal:{n}")
            submit(tree, period, group)
            challenge = ledger.challengeAvailability(period, group, sender=ops[4])
            chunk_gas = [ledger.revealLeaves(period, group, i, [leaf_struct(lf) for lf in tree.leaves[i:i + chunk]],
                                             sender=ops[1]).gas_used for i in range(0, n, chunk)]
            assert ledger.availabilityChallenge(period, group).revealed
            results[f"reveal_gas_per_reading_{key}"] = round(sum(chunk_gas) / n, 2)
            results[f"reveal_max_tx_gas_{key}"] = max(chunk_gas)
            results["challenge_gas"] = challenge.gas_used
            # what the leaves' calldata alone costs (16 gas a non-zero byte, 4 a zero byte): the floor
            encoded = b"".join(leaf_words(lf) for lf in tree.leaves)
            results[f"reveal_calldata_gas_per_reading_{key}"] = round(
                sum(16 if x else 4 for x in encoded) / n, 2)
            print(f"reveal {n:>6} readings in {len(chunk_gas)} chunks of <= {chunk}: {sum(chunk_gas):>10} gas,"
                  f" {sum(chunk_gas) / n:8.2f} gas/reading (leaf calldata alone"
                  f" {results[f'reveal_calldata_gas_per_reading_{key}']}), largest chunk {max(chunk_gas)} gas"
                  f" (challenge {challenge.gas_used})")
        results["reveal_chunk"] = chunk

        # naive baseline: every reading its own transaction, two rounds (first write, then steady state)
        naive_domain = ref.Domain(chain.chain_id, naive.address)
        nms = meters(naive_readings, "naive-", ref.group_id("bench:naive"))
        for m in nms:
            registry.registerMeter(*m.register_args(), sender=meter_op)
        rounds = []
        for k, p in enumerate((period, period + 1)):
            gas = 0
            for i, m in enumerate(nms):
                lf = make_leaf(naive_domain, m, p, 10_000 * (k + 1) + i, 0, 0, 0, 0)
                r = lf.reading
                tx = naive.submitReading(r.meter_id, r.period, r.timestamp, r.import_mwh, r.export_mwh,
                                         lf.signature, sender=ops[0])
                gas += tx.gas_used
            rounds.append(gas / naive_readings)
        results["naive_gas_per_reading_first"] = round(rounds[0], 2)
        results["naive_gas_per_reading"] = round(rounds[1], 2)
        print(f"naive: first reading of a meter {rounds[0]:.0f} gas, later readings {rounds[1]:.0f} gas per reading")

        results["fraud_proof_gas_by_kind"] = fraud_gas(ledger, registry, meter_op, ops, prover, chain, domain,
                                                       trees[sizes[-1]], period, submit)
        for kind, gas in results["fraud_proof_gas_by_kind"].items():
            print(f"fraud proof at {sizes[-1]:,} leaves, {kind:<16} {gas:>7} gas")
        results["fraud_proof_gas"] = max(results["fraud_proof_gas_by_kind"].values())
        results["ratio_naive_to_batched_10000"] = round(results["naive_gas_per_reading"]
                                                        / results["gas_per_reading_10000"], 1)
    print(json.dumps(results))  # after the provider closed: ape logs anvil's stop to stdout


def fraud_gas(ledger, registry, meter_op, ops, prover, chain, domain, honest, period, submit) -> dict:
    """Each fraud proof against its own batch (the largest size) with one fault (copies of the
    final honest tree, so that the previous-register proof has its final evidence batch)."""
    tree, ms, group = honest  # final at `period`
    p = period + 1
    i = len(tree.leaves) * 4_321 // 10_000 | 1  # odd: its left neighbour shares its parent
    target = ms[i]
    registry.registerMeter(*target.register_args(), sender=meter_op)
    out = {}

    def variant(name: str, mutate, in_group: bytes | None = None):
        """Submit a copy with one fault, in its own group unless the proof needs the meters' group."""
        t = copy.copy(tree)
        t.levels = [list(level) for level in tree.levels]
        t.leaves = list(tree.leaves)
        mutate(t)
        g = in_group or ref.group_id(f"bench:fraud:{name}")
        submit(t, p, g, count=len(tree.leaves))
        return t, g

    def leaf_at(t, k):
        return leaf_struct(t.leaves[k])

    # bad signature: the registered meter's reading signed by another key
    def bad_sig(t):
        t.leaves[i] = make_leaf(domain, target, p, 50_000, 0, period, 10_000, 0, signer=b"\x55" * 32)
        t.corrupt(0, i, ref.leaf_node(t.leaves[i]))
    t, g = variant("signature", bad_sig)
    out["bad_signature"] = ledger.proveBadSignature(p, g, leaf_at(t, i), i, t.proof(i), sender=prover).gas_used

    # unknown meter: an unregistered meter (every one but the target)
    t, g = variant("unknown", lambda t: None)
    out["unknown_meter"] = ledger.proveUnknownMeter(p, g, leaf_at(t, i + 1), i + 1, t.proof(i + 1),
                                                    sender=prover).gas_used

    # previous register: counts from 9,000 although the final leaf of `period` says 10,000 + 7 i
    def bad_prev(t):
        t.leaves[i] = make_leaf(domain, target, p, 90_000, 0, period, 9_000, 0)
        t.corrupt(0, i, ref.leaf_node(t.leaves[i]))
    # (in the meters' own group: the evidence is that group's final batch of `period`)
    t, g = variant("previous", bad_prev, in_group=group)
    out["bad_previous"] = ledger.proveBadPrevious(p, g, leaf_at(t, i), i, t.proof(i), period, group,
                                                  leaf_struct(tree.leaves[i]), i, tree.proof(i),
                                                  sender=prover).gas_used

    # out of order: two adjacent leaves swapped
    def swap(t):
        t.leaves[i], t.leaves[i + 1] = t.leaves[i + 1], t.leaves[i]
        t.corrupt(0, i, ref.leaf_node(t.leaves[i]))
        t.corrupt(0, i + 1, ref.leaf_node(t.leaves[i + 1]))
    t, g = variant("order", swap)
    out["out_of_order"] = ledger.proveOutOfOrder(p, g, leaf_at(t, i), i, t.proof(i), leaf_at(t, i + 1),
                                                 t.proof(i + 1), sender=prover).gas_used

    # an inner node whose sum is off by one
    def bad_sum(t):
        n = t.node(1, i // 2)
        t.corrupt(1, i // 2, (n[0], n[1] + 1, n[2]))
    t, g = variant("sum", bad_sum)
    out["bad_sum"] = ledger.proveBadSum(p, g, 1, i // 2, node_struct(t.node(1, i // 2)),
                                        node_struct(t.node(0, i & ~1)), node_struct(t.node(0, i | 1)),
                                        t.proof(i // 2, 1), sender=prover).gas_used

    # a child's sum 2^64 wider than it is, its parent's sum as the honest one
    def wide_sum(t):
        h, imp, exp = t.node(0, i & ~1)
        t.corrupt(0, i & ~1, (h, imp + U64, exp))
        ph, pi, pe = t.node(1, i // 2)
        t.corrupt(1, i // 2, (ph, pi - U64, pe))
    t, g = variant("wide", wide_sum)
    out["bad_width_sum"] = ledger.proveBadSum(p, g, 1, i // 2, node_struct(t.node(1, i // 2)), t.node(0, i & ~1),
                                              node_struct(t.node(0, i | 1)), t.proof(i // 2, 1),
                                              sender=prover).gas_used

    # a leaf's hash one level up, with its sums
    def kind(t):
        t.corrupt(1, i // 2, (t.leaves[i].hash(), 5, 0))
    t, g = variant("kind", kind)
    out["bad_node_kind"] = ledger.proveBadNodeKind(p, g, 1, i // 2, node_struct(t.node(1, i // 2)),
                                                   keccak(t.leaves[i].encoded()), t.proof(i // 2, 1),
                                                   sender=prover).gas_used

    # a leaf whose registers are hashed 2^64 wider than uint64 (same delta)
    words = leaf_words(tree.leaves[i], import_mwh=U64 + tree.leaves[i].reading.import_mwh, prev_import_mwh=U64)

    def malformed(t):
        t.corrupt(0, i, (keccak(keccak(words)), *t.node(0, i)[1:]))
    t, g = variant("malformed", malformed)
    out["malformed_leaf"] = ledger.proveMalformedLeaf(p, g, i, node_struct(t.node(0, i)), words, t.proof(i),
                                                      sender=prover).gas_used

    # a leaf node whose delta is not its fields'
    def bad_leaf(t):
        n = t.node(0, i)
        t.corrupt(0, i, (n[0], n[1] + 1, n[2]))
    t, g = variant("leaf", bad_leaf)
    out["bad_leaf_sum"] = ledger.proveBadLeafSum(p, g, leaf_at(t, i), i, node_struct(t.node(0, i)), t.proof(i),
                                                 sender=prover).gas_used

    # counts from the final batch of `period`, which does not hold the meter: its two neighbours show it
    ids = [lf.reading.meter_id for lf in tree.leaves]
    late = next(m for m in (MeterSpec(f"late-{k}", group, active_from=period - 5) for k in range(1000))
                if ids[0] < m.meter_id < ids[-1])
    registry.registerMeter(*late.register_args(), sender=meter_op)
    pos = sum(x < late.meter_id for x in ids)  # neighbours at pos - 1 and pos

    def missing(t):
        t.leaves[pos] = make_leaf(domain, late, p, 90_000, 0, period, 9_000, 0)
        t.corrupt(0, pos, ref.leaf_node(t.leaves[pos]))
    t, g = variant("missing", missing, in_group=group)  # replaces the rejected bad_previous batch
    out["missing_previous"] = ledger.proveMissingPrevious(
        p, g, leaf_at(t, pos), pos, t.proof(pos), pos - 1, [leaf_at(tree, pos - 1), leaf_at(tree, pos)],
        tree.pair_proof(pos - 1), sender=prover).gas_used

    # padding beyond count that is not empty
    pad = len(tree.leaves)
    t, g = variant("padding", lambda t: t.corrupt(0, pad, (b"\x01" * 32, 1, 0)))
    out["bad_padding"] = ledger.proveBadPadding(p, g, pad, node_struct(t.node(0, pad)), t.proof(pad),
                                                sender=prover).gas_used
    return out


if __name__ == "__main__":
    main()
