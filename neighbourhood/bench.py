"""Benchmark: the default day (24 households + miner, 96 periods), `python -m neighbourhood.bench`.

Baseline in the same run: the same order books cleared by brute force (evaluate demand and
supply at every candidate price, quadratic), which also cross-checks the traded quantities.
Prints one JSON object on its last line.
"""
from __future__ import annotations

import json
import time

from .market import Side, clear
from .scenario import DEFAULT_START, DEFAULT_TARIFF, build_households
from .simulation import Simulation


def _brute_force_traded(orders, tariff) -> int:
    candidates = {o.effective_limit(tariff) for o in orders}
    best = 0
    for price in candidates:
        demand = sum(o.quantity_mwh for o in orders if o.side is Side.BUY and o.effective_limit(tariff) >= price)
        supply = sum(o.quantity_mwh for o in orders if o.side is Side.SELL and o.effective_limit(tariff) <= price)
        best = max(best, min(demand, supply))
    return best


def main() -> None:
    households, periods = 24, 96
    started = time.perf_counter()
    simulation = Simulation(build_households(households, seed=1, periods=periods), DEFAULT_TARIFF, DEFAULT_START)
    result = simulation.run(periods)
    simulate_s = time.perf_counter() - started

    books = [[f.order for f in r.clearing.fills] for r in result.periods]
    started = time.perf_counter()
    cleared = [clear(book, DEFAULT_TARIFF).traded_mwh for book in books]
    clear_s = time.perf_counter() - started
    started = time.perf_counter()
    brute = [_brute_force_traded(book, DEFAULT_TARIFF) for book in books]
    brute_s = time.perf_counter() - started
    if cleared != brute:
        raise SystemExit("auction and brute force disagree on the traded quantity")
    print(json.dumps({
        "bench": "neighbourhood",
        "households": households, "periods": periods,
        "orders_per_period": round(sum(map(len, books)) / periods, 1),
        "simulate_day_s": round(simulate_s, 4),
        "auction_all_periods_s": round(clear_s, 4),
        "baseline_brute_force_clearing_s": round(brute_s, 4),
        "auction_speedup_vs_brute_force": round(brute_s / clear_s, 1),
        "self_sufficiency": round(result.summary.self_sufficiency, 4),
    }))


if __name__ == "__main__":
    main()
