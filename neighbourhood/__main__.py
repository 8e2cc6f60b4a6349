"""Pure simulation driver: `python -m neighbourhood [--households N] [--periods N] [--seed N]`."""
from __future__ import annotations

import argparse
import json
import time

from .scenario import DEFAULT_START, DEFAULT_TARIFF, build_households
from .simulation import Simulation, summarize


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m neighbourhood", description=__doc__)
    parser.add_argument("--households", type=int, default=24)
    parser.add_argument("--periods", type=int, default=96)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=DEFAULT_START, help="unix time, a period boundary")
    args = parser.parse_args(argv)
    households = build_households(args.households, args.seed, args.start, args.periods)
    simulation = Simulation(households, DEFAULT_TARIFF, args.start)
    for _ in range(args.periods):
        r = simulation.step()
        price = "-" if r.clearing.price is None else f"{r.clearing.price / 10_000:.2f}"
        print(f"{time.strftime('%H:%M', time.gmtime(r.start))}  price {price:>6} ct/kWh  "
              f"local {r.clearing.traded_mwh / 1e6:7.2f} kWh  grid net {r.net_import_mwh / 1e6:+8.2f} kWh")
    s = summarize(simulation.history)
    print(json.dumps({
        "households": args.households, "periods": s.periods,
        "traded_locally_kwh": s.traded_locally_mwh / 1e6, "end_use_kwh": s.end_use_mwh / 1e6,
        "solar_kwh": s.solar_mwh / 1e6, "grid_import_kwh": s.grid_import_mwh / 1e6,
        "grid_export_kwh": s.grid_export_mwh / 1e6, "self_sufficiency": round(s.self_sufficiency, 4),
        "market_cost_eur": str(round(s.market_cost_eur, 2)),
        "flat_tariff_cost_eur": str(round(s.flat_tariff_cost_eur, 2)),
        "savings_eur": str(round(s.savings_eur, 2)),
    }))


if __name__ == "__main__":
    main()
