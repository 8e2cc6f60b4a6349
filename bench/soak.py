"""Soak: 20,000 meters over at least 20 periods on three nodes (quorum 2 of 3), with random
partial deliveries (a reading reaches one or two nodes only), meters equivocating (different
signed readings at one timestamp for different nodes) and one node restarted mid-run. Every
period must settle with the reconciled set on chain: one leaf per meter, the equivocations
settled by the rule (the lowest signature).

Figures: `periods_settled` of `periods_expected` (final on chain), `readings_lost` (readings
accepted by a node that was up at the close but missing from the period's final batch, goal 0),
`equivocations_settled_by_rule`, and the process's RSS growth per period (all three nodes run in
this process, and so does the bench's own record of every expected reading and signature, about
20,000 x 150 bytes a period: the figure is an upper bound on the nodes' growth).

Run: .venv/bin/python bench/soak.py [--quick]   (--quick: 12 meters over 5 periods of 5 s, well
under a minute, the same JSON keys). Prints one JSON object on its last line."""
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is sys.path[0], where bench/node.py would shadow the node package:
# the repository root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import random
import shutil
import tempfile
import time
from typing import NamedTuple

import httpx

import rust_core
from rust_core.wire import Reading
from scripts._network import Network, reading_entry

GRACE = 0.5


class Sizes(NamedTuple):
    meters: int
    periods: int
    period_seconds: int     # long enough to deliver every reading to three nodes within one period
    window: int
    partial_share: float    # share of readings delivered to one or two nodes only
    equivocating: int       # meters signing forks per period
    restart_at: int         # index of the period during which node 2 is down (restarted after it)


# 150 s: with all three nodes in this one process (one interpreter lock), the restarted node's
# catch-up slowed the next delivery of 60,000 entries past a 90 s period on a loaded 2-core machine.
FULL = Sizes(20_000, 20, 150, 2, 0.05, 20, 8)
QUICK = Sizes(12, 5, 5, 1, 0.25, 2, 2)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def post(client: httpx.Client, url: str, entries: list[dict]) -> None:
    for i in range(0, len(entries), 500):
        r = client.post(url + "/v1/readings", json={"readings": entries[i:i + 500]})
        if r.status_code not in (200, 422):
            raise RuntimeError(f"{url} answered {r.status_code}: {r.text[:200]}")


def run(cfg: Sizes, workdir: Path, rng: random.Random) -> dict:
    net = Network(cfg.meters, workdir, cfg.period_seconds, cfg.window, GRACE)
    try:
        print(f"{cfg.meters} meters registered in {net.register_s:.1f} s", file=sys.stderr, flush=True)
        keys = dict(net.meters)
        registers = {m: [1_000_000, 0] for m, _ in net.meters}
        expected: dict[int, dict[bytes, tuple[tuple, bytes]]] = {}  # period -> meter -> (reading, signature)
        rss: list[int] = []
        net.start_loops()
        with httpx.Client(timeout=120) as client:
            last = -1
            for k in range(cfg.periods):
                # the start of a period after the last one delivered
                while (int(time.time()) // cfg.period_seconds == last
                       or time.time() % cfg.period_seconds > min(2, cfg.period_seconds / 4)):
                    time.sleep(0.05)
                ts = int(time.time())
                p = last = ts // cfg.period_seconds
                if k == cfg.restart_at:  # once the previous period is closed and reconciled everywhere
                    time.sleep(max(0.0, GRACE + 1.0 - time.time() % cfg.period_seconds))
                    net.down(2)
                if k == cfg.restart_at + 1:
                    net.up(2)
                live = [i for i in range(3) if net.nodes[i] is not None]
                readings: list[Reading] = []
                for mid, _ in net.meters:
                    registers[mid][0] += rng.randrange(1, 5000)
                    readings.append(Reading(mid, p, ts, registers[mid][0], registers[mid][1]))
                forks_of: dict[bytes, list[Reading]] = {}
                for mid in rng.sample([m for m, _ in net.meters], cfg.equivocating):
                    base = registers[mid]
                    forks_of[mid] = [Reading(mid, p, ts, base[0] + 7 * j, base[1]) for j in range(1, len(live))]
                    registers[mid][0] += 7 * len(live)  # the next reading lies above every fork
                extra = [r for fs in forks_of.values() for r in fs]
                sigs = rust_core.sign_readings(net.domain, readings + extra, [keys[r[0]] for r in readings + extra])
                sig_of = dict(zip(readings + extra, sigs))
                per_node: dict[int, list[dict]] = {i: [] for i in live}
                settled: dict[bytes, tuple[tuple, bytes]] = {}
                for r in readings:
                    forks = forks_of.get(r[0])
                    if forks:  # one fork per live node: the first node gets r, the others a fork each
                        variants = [r, *forks]
                        for i, v in zip(live, variants):
                            per_node[i].append(reading_entry(v, sig_of[v]))
                        best = min(variants, key=lambda v: sig_of[v])
                        settled[r[0]] = (best, sig_of[best])
                        continue
                    targets = live if rng.random() >= cfg.partial_share else rng.sample(live, rng.randrange(1, len(live)))
                    for i in targets:
                        per_node[i].append(reading_entry(r, sig_of[r]))
                    settled[r[0]] = (r, sig_of[r])
                for i in live:
                    post(client, net.urls[i], per_node[i])
                if time.time() >= (p + 1) * cfg.period_seconds:
                    raise RuntimeError("delivery outlasted the period; lengthen period_seconds")
                expected[p] = settled
                rss.append(rss_bytes())
                print(f"period {p}: delivered to nodes {live}, {len(forks_of)} equivocating meters",
                      file=sys.stderr, flush=True)
        deadline = time.time() + 60 + 3 * cfg.period_seconds
        final: dict[int, tuple] = {}
        while time.time() < deadline and len(final) < len(expected):
            for p in expected:
                if p not in final and net.batch(p)[5] == 2:
                    final[p] = net.batch(p)
            time.sleep(0.2)
        rss.append(rss_bytes())
        lost = 0
        by_rule = 0
        node0 = net.node(0)
        for p, settled in expected.items():
            if p not in final:
                lost += len(settled)
                continue
            leaves = {lf.meter_id: lf for lf in node0.archive.leaves(p, net.group, final[p][0])}
            for mid, (want, sig) in settled.items():
                lf = leaves.get(mid)
                if lf is None or lf.reading != want or lf.signature != sig:
                    print(f"period {p}: meter 0x{mid.hex()[:12]} settled {lf and lf.reading} instead of {want}",
                          file=sys.stderr)
                    lost += 1
        by_rule = sum(1 for p in final for e in node0.archive.equivocations(p) if e.kind == "same_timestamp")
        n = len(rss) - 1
        return {
            "meters": cfg.meters,
            "periods_expected": len(expected),
            "periods_settled": len(final),
            "readings_lost": lost,
            "equivocation_pairs_archived": by_rule,
            "batches_rebuilt": sum(int(x.metrics.batches_rebuilt._value.get()) for x in net.nodes if x is not None),
            "rss_start_mb": round(rss[0] / 2**20, 1),
            "rss_growth_per_period_mb": round((rss[-1] - rss[0]) / max(1, n) / 2**20, 2),
        }
    finally:
        net.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, well under a minute, the same JSON keys")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--meters", type=int, help="override the size's meter count")
    parser.add_argument("--periods", type=int, help="override the size's period count")
    parser.add_argument("--period-seconds", type=int, help="override the size's period length")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    cfg = cfg._replace(**{k: v for k, v in (("meters", args.meters), ("periods", args.periods),
                                            ("period_seconds", args.period_seconds)) if v is not None})
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    try:
        result = run(cfg, workdir, random.Random(args.seed))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = {"quick": args.quick, "quorum": "2 of 3", "period_seconds": cfg.period_seconds,
           "partial_share": cfg.partial_share, "equivocating_meters_per_period": cfg.equivocating,
           "restarted_node": 2, "goal_readings_lost": 0, **result}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
