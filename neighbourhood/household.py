"""A household: its devices' agents behind one meter, and the meter's cumulative registers."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal

from .agents import Agent
from .market import GridTariff, Order, Side


def _non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer (mWh), got {value!r}")
    return value


class MeterRegister:
    """Cumulative import and export registers of one meter, advanced period by period.

    `registers(now)` is what a meter simulator displays at time `now`: within a recorded period
    the registers rise linearly (rounded down to the mWh), past the last recorded period they
    stand still until the simulation records the next one. Values are exact Wh decimals.
    Safe to read from another thread while the simulation records (the list only grows).
    """

    def __init__(self, start: int, period_seconds: int = 900, import_mwh: int = 0, export_mwh: int = 0) -> None:
        _non_negative_int("start", start)
        if isinstance(period_seconds, bool) or not isinstance(period_seconds, int) or period_seconds <= 0:
            raise ValueError(f"period_seconds must be a positive integer, got {period_seconds!r}")
        self.start = start
        self.period_seconds = period_seconds
        # cumulative (import, export) at start + i * period_seconds; one list so that a reader
        # never sees import advanced without export
        self._boundaries = [(_non_negative_int("import_mwh", import_mwh), _non_negative_int("export_mwh", export_mwh))]

    @property
    def recorded_until(self) -> int:
        return self.start + (len(self._boundaries) - 1) * self.period_seconds

    @property
    def totals_mwh(self) -> tuple[int, int]:
        return self._boundaries[-1]

    def record(self, import_mwh: int, export_mwh: int) -> None:
        """Add the energy imported and exported during the next period."""
        _non_negative_int("import_mwh", import_mwh)
        _non_negative_int("export_mwh", export_mwh)
        last_import, last_export = self._boundaries[-1]
        self._boundaries.append((last_import + import_mwh, last_export + export_mwh))  # atomic append

    def registers(self, now: float) -> tuple[Decimal, Decimal]:
        """Cumulative (import_wh, export_wh) at unix time `now`."""
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise ValueError(f"now must be a finite number of unix seconds, got {now!r}")
        if now < self.start:
            raise ValueError(f"now ({now}) is before the meter's first recorded period ({self.start})")
        boundaries = self._boundaries
        index = int((now - self.start) // self.period_seconds)
        if index >= len(boundaries) - 1:
            import_mwh, export_mwh = boundaries[-1]
        else:
            period_ms = self.period_seconds * 1000
            elapsed_ms = min(int((now - self.start - index * self.period_seconds) * 1000), period_ms)
            (i0, e0), (i1, e1) = boundaries[index], boundaries[index + 1]
            import_mwh = i0 + (i1 - i0) * elapsed_ms // period_ms
            export_mwh = e0 + (e1 - e0) * elapsed_ms // period_ms
        return Decimal(import_mwh).scaleb(-3), Decimal(export_mwh).scaleb(-3)


@dataclass
class Household:
    """Devices (through their agents) behind one meter. Battery charging counts as consumption."""

    name: str
    agents: list[Agent]
    meter: MeterRegister

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("household name must not be empty")
        names = [a.name for a in self.agents]
        if len(set(names)) != len(names):
            raise ValueError(f"household {self.name} has agents with the same name: {sorted(names)}")


def self_supply(orders: list[Order], tariff: GridTariff) -> tuple[dict[str, tuple[int, int]], list[Order]]:
    """Behind the meter first: one household's asks serve its own must-run bids (limit >= the
    import price) before anything goes to the market, cheapest ask first, ties by agent name.

    Without this a household could sell its solar to a neighbour at the clearing price and buy
    its own load's remainder from the grid at the import price, paying more than its meter shows.
    Returns per agent (bought, sold) served in the house, and the remaining orders in their order.
    """
    must = sorted((i for i, o in enumerate(orders) if o.side is Side.BUY and o.limit >= tariff.import_price),
                  key=lambda i: (orders[i].agent, i))
    asks = sorted((i for i, o in enumerate(orders) if o.side is Side.SELL),
                  key=lambda i: (orders[i].effective_limit(tariff), orders[i].agent, i))
    left = [o.quantity_mwh for o in orders]
    for b in must:
        for a in asks:
            quantity = min(left[b], left[a])
            left[b] -= quantity
            left[a] -= quantity
            if left[b] == 0:
                break
    served: dict[str, tuple[int, int]] = {}
    remaining = []
    for order, quantity in zip(orders, left):
        if quantity:
            remaining.append(replace(order, quantity_mwh=quantity))
        used = order.quantity_mwh - quantity
        if used:
            bought, sold = served.get(order.agent, (0, 0))
            served[order.agent] = (bought + used, sold) if order.side is Side.BUY else (bought, sold + used)
    return served, remaining
