"""A seeded neighbourhood: households with solar, batteries, EVs, heat pumps and loads, plus a miner.

Everything is drawn from `random.Random(f"{seed}:...")` streams, so the same seed gives the
same neighbourhood on every machine and Python version.
"""
from __future__ import annotations

import random
from fractions import Fraction

from .agents import BatteryAgent, EVAgent, LoadAgent, MinerAgent, SolarAgent, ThermostatAgent
from .devices import (
    DAY_SECONDS,
    Battery,
    ChargingSession,
    EVCharger,
    HeatPump,
    Miner,
    PlainLoad,
    SolarPanel,
    energy_mwh,
)
from .household import Household, MeterRegister
from .market import GridTariff

DEFAULT_START = 1_773_964_800  # 2026-03-20 00:00 UTC, a spring day
DEFAULT_TARIFF = GridTariff(import_price=300_000, feed_in=80_000)  # 30 ct/kWh, 8 ct/kWh
MINER_NAME = "miner"


def build_households(count: int = 24, seed: int = 1, start: int = DEFAULT_START, periods: int = 96,
                     period_seconds: int = 900, miner_w: float = 10_000, miner_limit: int = 100_000) -> list[Household]:
    """`count` households named h01, h02, ...; with `miner_w` > 0 one more site, "miner",
    holding only the flexible load that buys surplus below `miner_limit`.

    EV sessions are laid out for the simulated window [start, start + periods * period_seconds).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    if start % period_seconds:
        raise ValueError(f"start ({start}) must be a multiple of period_seconds ({period_seconds})")
    if periods <= 0:
        raise ValueError(f"periods must be positive, got {periods}")
    end = start + periods * period_seconds
    households = [_household(f"h{i + 1:02d}", seed, start, end, period_seconds) for i in range(count)]
    if miner_w > 0:
        miner = MinerAgent(f"{MINER_NAME}/miner", Miner(miner_w, period_seconds), miner_limit)
        households.append(Household(MINER_NAME, [miner], MeterRegister(start, period_seconds)))
    return households


def _household(name: str, seed: int, start: int, end: int, period_seconds: int) -> Household:
    rng = random.Random(f"{seed}:household:{name}")
    agents: list = [LoadAgent(f"{name}/load", PlainLoad(
        base_w=rng.uniform(120, 300), peak_w=rng.uniform(400, 1200),
        seed=rng.randrange(2**32), period_seconds=period_seconds))]
    has_solar = rng.random() < 0.6
    if has_solar:
        agents.append(SolarAgent(f"{name}/solar", SolarPanel(
            peak_w=rng.uniform(3000, 9000), seed=rng.randrange(2**32), period_seconds=period_seconds)))
    if has_solar and rng.random() < 0.6:
        capacity = rng.randrange(5_000_000, 13_000_001, 1000)
        power = rng.uniform(2500, 5000)
        agents.append(BatteryAgent(f"{name}/battery", Battery(
            capacity_mwh=capacity, max_charge_w=power, max_discharge_w=power,
            soc_mwh=capacity * rng.randrange(20, 61) // 100, min_soc_mwh=capacity // 10,
            efficiency=Fraction(95, 100), period_seconds=period_seconds)))
    if rng.random() < 0.4:
        max_w = rng.choice([3700, 7400, 11000])
        sessions = _ev_sessions(seed, name, start, end, period_seconds, energy_mwh(max_w, period_seconds))
        agents.append(EVAgent(f"{name}/ev", EVCharger(max_w, sessions, period_seconds)))
    if rng.random() < 0.5:
        low = rng.uniform(19.5, 20.5)
        heat_pump = HeatPump(electric_w=rng.uniform(1800, 2500), cop=rng.uniform(3.0, 3.5),
                             loss_w_per_k=rng.uniform(100, 170), capacity_wh_per_k=rng.uniform(4000, 8000),
                             indoor_c=low + rng.uniform(0.5, 2.0), period_seconds=period_seconds)
        agents.append(ThermostatAgent(f"{name}/heat_pump", heat_pump, low, low + 2.5))
    meter = MeterRegister(start, period_seconds,
                          import_mwh=rng.randrange(1_000, 20_000) * 1_000_000 + rng.randrange(1_000_000),
                          export_mwh=rng.randrange(0, 10_000) * 1_000_000 if has_solar else 0)
    return Household(name, agents, meter)


def _ev_sessions(seed: int, name: str, start: int, end: int, period_seconds: int, max_mwh: int) -> list[ChargingSession]:
    """Plugged in each evening (17:00-19:00), leaving the next morning (06:30-08:00).

    A session already running at `start` keeps only what can still be charged in half of its
    remaining time."""
    sessions = []
    for day in range(start // DAY_SECONDS - 1, end // DAY_SECONDS + 1):
        rng = random.Random(f"{seed}:ev:{name}:{day}")
        arrival = day * DAY_SECONDS + rng.randrange(17 * 4, 19 * 4) * 900
        departure = (day + 1) * DAY_SECONDS + rng.randrange(26, 32) * 900
        energy = rng.randrange(6_000, 25_001) * 1000
        arrival = -(-arrival // period_seconds) * period_seconds
        departure = departure // period_seconds * period_seconds
        if departure <= start or arrival >= end:
            continue
        if arrival < start:
            arrival = start
            energy = min(energy, max_mwh * ((departure - arrival) // period_seconds) // 2)
        sessions.append(ChargingSession(arrival, departure, energy))
    return sessions
