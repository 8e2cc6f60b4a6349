"""Runs the neighbourhood period by period: each household serves its own must-run needs
(`household.self_supply`), the rest goes to the auction, the devices follow, the meters record.

Forecasts are perfect: what an agent bids for a period is what its device then does (the solar
panel sells exactly what it produces, a load buys exactly what it draws).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from .agents import Flow
from .household import Household, self_supply
from .market import Clearing, GridTariff, Order, Side, clear, energy_cost_eur

# end-use consumption: what self-sufficiency is measured against (battery charging is storage)
END_USE_KINDS = frozenset({"load", "ev", "heat_pump", "miner"})


@dataclass(frozen=True)
class HouseholdPeriod:
    """One household in one period; energies in mWh, money in euros (positive: it pays)."""

    household: str
    consumed_mwh: int  # everything its devices drew, battery charging included
    produced_mwh: int  # solar and battery discharge
    end_use_mwh: int
    solar_mwh: int
    self_supplied_mwh: int  # its own production used in the house, outside the market
    import_mwh: int  # what its meter recorded
    export_mwh: int
    local_bought_mwh: int
    local_sold_mwh: int
    grid_bought_mwh: int
    grid_sold_mwh: int
    cost_eur: Decimal  # with the local market
    flat_cost_eur: Decimal  # the same meter energies on the flat tariff (import price / feed-in)


@dataclass(frozen=True)
class PeriodResult:
    start: int
    clearing: Clearing
    households: tuple[HouseholdPeriod, ...]
    flows: dict[str, Flow]  # per agent name
    self_supplied: dict[str, tuple[int, int]]  # per agent (bought, sold) within its own household

    @property
    def net_import_mwh(self) -> int:
        """The neighbourhood's net exchange with the grid (positive: import)."""
        return sum(h.import_mwh - h.export_mwh for h in self.households)


@dataclass(frozen=True)
class Summary:
    periods: int
    traded_locally_mwh: int
    end_use_mwh: int
    solar_mwh: int
    grid_import_mwh: int
    grid_export_mwh: int
    self_sufficiency: float  # share of end use not imported from the grid
    market_cost_eur: Decimal
    flat_tariff_cost_eur: Decimal

    @property
    def savings_eur(self) -> Decimal:
        return self.flat_tariff_cost_eur - self.market_cost_eur


@dataclass(frozen=True)
class SimulationResult:
    periods: tuple[PeriodResult, ...]
    summary: Summary


class Simulation:
    """Advance with `step()` (one period) or `run(n)`; the households' meters follow."""

    def __init__(self, households: Sequence[Household], tariff: GridTariff, start: int, period_seconds: int = 900) -> None:
        if start % period_seconds:
            raise ValueError(f"start ({start}) must be a multiple of period_seconds ({period_seconds})")
        names = [h.name for h in households]
        if len(set(names)) != len(names):
            raise ValueError(f"household names must be unique, got {names}")
        agent_names = [a.name for h in households for a in h.agents]
        if len(set(agent_names)) != len(agent_names):
            raise ValueError("agent names must be unique across the neighbourhood")
        for h in households:
            if h.meter.period_seconds != period_seconds or h.meter.recorded_until != start:
                raise ValueError(
                    f"meter of {h.name} records up to {h.meter.recorded_until} in periods of "
                    f"{h.meter.period_seconds} s; the simulation starts at {start} with {period_seconds} s"
                )
        self.households = list(households)
        self.tariff = tariff
        self.period_seconds = period_seconds
        self.now = start
        self.history: list[PeriodResult] = []

    def step(self) -> PeriodResult:
        t, tariff = self.now, self.tariff
        orders: list[Order] = []
        in_house: dict[str, tuple[int, int]] = {}
        for h in self.households:
            served, remaining = self_supply([o for a in h.agents for o in a.orders(t, tariff)], tariff)
            in_house.update(served)
            orders += remaining
        clearing = clear(orders, tariff)
        totals = clearing.agent_totals()
        for name, (bought, sold) in in_house.items():
            market_bought, market_sold = totals.get(name, (0, 0))
            totals[name] = (market_bought + bought, market_sold + sold)
        local_grid = _household_trades(clearing, self.households)
        flows: dict[str, Flow] = {}
        rows = []
        for h in self.households:
            consumed = produced = end_use = solar = 0
            for agent in h.agents:
                flow = agent.settle(t, *totals.get(agent.name, (0, 0)))
                flows[agent.name] = flow
                consumed += flow.consumed_mwh
                produced += flow.produced_mwh
                if agent.kind in END_USE_KINDS:
                    end_use += flow.consumed_mwh
                elif agent.kind == "solar":
                    solar += flow.produced_mwh
            net = consumed - produced
            imported, exported = max(net, 0), max(-net, 0)
            local_bought, local_sold, grid_bought, grid_sold = local_grid[h.name]
            cost = (energy_cost_eur(grid_bought, tariff.import_price) - energy_cost_eur(grid_sold, tariff.feed_in))
            if clearing.price is not None:
                cost += energy_cost_eur(local_bought - local_sold, clearing.price)
            flat = energy_cost_eur(imported, tariff.import_price) - energy_cost_eur(exported, tariff.feed_in)
            own = sum(in_house.get(a.name, (0, 0))[0] for a in h.agents)
            rows.append(HouseholdPeriod(h.name, consumed, produced, end_use, solar, own, imported, exported,
                                        local_bought, local_sold, grid_bought, grid_sold, cost, flat))
        for h, row in zip(self.households, rows):  # only once every device has settled
            h.meter.record(row.import_mwh, row.export_mwh)
        result = PeriodResult(t, clearing, tuple(rows), flows, in_house)
        self.history.append(result)
        self.now += self.period_seconds
        return result

    def run(self, periods: int) -> SimulationResult:
        if isinstance(periods, bool) or not isinstance(periods, int) or periods < 0:
            raise ValueError(f"periods must be a non-negative integer, got {periods!r}")
        results = tuple(self.step() for _ in range(periods))
        return SimulationResult(results, summarize(results))


def _household_trades(clearing: Clearing, households: Sequence[Household]) -> dict[str, list[int]]:
    """Per household: [local bought, local sold, grid bought, grid sold] in mWh."""
    owner = {a.name: h.name for h in households for a in h.agents}
    trades = {h.name: [0, 0, 0, 0] for h in households}
    for fill in clearing.fills:
        row = trades[owner[fill.order.agent]]
        offset = 0 if fill.order.side is Side.BUY else 1
        row[offset] += fill.local_mwh
        row[2 + offset] += fill.grid_mwh
    return trades


def summarize(results: Sequence[PeriodResult]) -> Summary:
    rows = [h for r in results for h in r.households]
    end_use = sum(h.end_use_mwh for h in rows)
    grid_import = sum(max(r.net_import_mwh, 0) for r in results)
    grid_export = sum(max(-r.net_import_mwh, 0) for r in results)
    return Summary(
        periods=len(results),
        traded_locally_mwh=sum(r.clearing.traded_mwh for r in results),
        end_use_mwh=end_use,
        solar_mwh=sum(h.solar_mwh for h in rows),
        grid_import_mwh=grid_import,
        grid_export_mwh=grid_export,
        self_sufficiency=1 - grid_import / end_use if end_use else 0.0,
        market_cost_eur=sum((h.cost_eur for h in rows), Decimal(0)),
        flat_tariff_cost_eur=sum((h.flat_cost_eur for h in rows), Decimal(0)),
    )
