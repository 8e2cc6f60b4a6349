"""Bidding agents: each turns its device's state into orders, then makes the device follow.

Prices are placed on the scale between the grid's feed-in tariff and import price. A need that
must be met this period (a load, the part of an EV's energy that cannot wait, the heating that
keeps the house in its comfort band) bids the import price, so the grid serves whatever the
neighbourhood does not; flexible energy bids less, the more so the more it can wait.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from .devices import Battery, DeviceError, EVCharger, HeatPump, Miner, PlainLoad, SolarPanel
from .market import GridTariff, Order, Side


@dataclass(frozen=True)
class Flow:
    """What a device drew from (`consumed_mwh`) and fed into (`produced_mwh`) the house wiring."""

    consumed_mwh: int = 0
    produced_mwh: int = 0


class Agent(Protocol):
    name: str
    kind: str

    def orders(self, t: int, tariff: GridTariff) -> list[Order]: ...

    def settle(self, t: int, bought_mwh: int, sold_mwh: int) -> Flow: ...


def price_between(tariff: GridTariff, fraction: float) -> int:
    """The price `fraction` of the way from feed-in to import price (0 <= fraction <= 1)."""
    return tariff.feed_in + int(tariff.span * min(max(fraction, 0.0), 1.0))


def _flexible_limit(tariff: GridTariff, fraction: float) -> int:
    """A flexible bid never reaches the import price, so the grid never serves it."""
    return min(price_between(tariff, fraction), tariff.import_price - 1)


def _nothing_sold(name: str, sold_mwh: int) -> None:
    if sold_mwh:
        raise DeviceError(f"{name} only buys, but {sold_mwh} mWh were sold for it")


class SolarAgent:
    kind = "solar"

    def __init__(self, name: str, panel: SolarPanel) -> None:
        self.name, self.panel = name, panel

    def orders(self, t: int, tariff: GridTariff) -> list[Order]:
        e = self.panel.production_mwh(t)
        return [Order(self.name, Side.SELL, e, tariff.feed_in)] if e else []

    def settle(self, t: int, bought_mwh: int, sold_mwh: int) -> Flow:
        if bought_mwh or sold_mwh != self.panel.production_mwh(t):
            raise DeviceError(
                f"{self.name} produces {self.panel.production_mwh(t)} mWh, got bought {bought_mwh}, sold {sold_mwh}"
            )
        return Flow(produced_mwh=sold_mwh)


class LoadAgent:
    kind = "load"

    def __init__(self, name: str, load: PlainLoad) -> None:
        self.name, self.load = name, load

    def orders(self, t: int, tariff: GridTariff) -> list[Order]:
        e = self.load.demand_mwh(t)
        return [Order(self.name, Side.BUY, e, tariff.import_price)] if e else []

    def settle(self, t: int, bought_mwh: int, sold_mwh: int) -> Flow:
        _nothing_sold(self.name, sold_mwh)
        if bought_mwh != self.load.demand_mwh(t):
            raise DeviceError(f"{self.name} needs {self.load.demand_mwh(t)} mWh, got {bought_mwh}")
        return Flow(consumed_mwh=bought_mwh)


class BatteryAgent:
    """Buys cheap, sells dear; the fuller it is, the lower both its bid and its ask.

    The bid (10-40 % of the way from feed-in to import price) stays below the ask (50-90 %),
    so it never trades with itself or another battery, and a full cycle earns its losses back.
    """

    kind = "battery"

    def __init__(self, name: str, battery: Battery) -> None:
        self.name, self.battery = name, battery

    def orders(self, t: int, tariff: GridTariff) -> list[Order]:
        empty = 1.0 - self.battery.soc_fraction
        orders = []
        if (room := self.battery.charge_room_mwh()) > 0:
            orders.append(Order(self.name, Side.BUY, room, price_between(tariff, 0.1 + 0.3 * empty)))
        if (available := self.battery.discharge_room_mwh()) > 0:
            orders.append(Order(self.name, Side.SELL, available, price_between(tariff, 0.5 + 0.4 * empty)))
        return orders

    def settle(self, t: int, bought_mwh: int, sold_mwh: int) -> Flow:
        if bought_mwh and sold_mwh:
            raise DeviceError(f"{self.name} cannot charge and discharge in one period")
        self.battery.charge(bought_mwh)
        self.battery.discharge(sold_mwh)
        return Flow(consumed_mwh=bought_mwh, produced_mwh=sold_mwh)


class EVAgent:
    """Bids what must be charged now to finish by departure at the import price, the rest
    at a price rising with the share of the remaining time the car still needs to charge."""

    kind = "ev"

    def __init__(self, name: str, charger: EVCharger) -> None:
        self.name, self.charger = name, charger

    def orders(self, t: int, tariff: GridTariff) -> list[Order]:
        session = self.charger.session_at(t)
        remaining = self.charger.remaining_mwh(t)
        if session is None or remaining == 0:
            return []
        periods_left = (session.departure - t) // self.charger.period_seconds
        now = min(remaining, self.charger.max_mwh)
        must = max(0, remaining - self.charger.max_mwh * (periods_left - 1))
        orders = []
        if must:
            orders.append(Order(self.name, Side.BUY, must, tariff.import_price))
        if now > must:
            urgency = remaining / (self.charger.max_mwh * periods_left)
            orders.append(Order(self.name, Side.BUY, now - must, _flexible_limit(tariff, urgency)))
        return orders

    def settle(self, t: int, bought_mwh: int, sold_mwh: int) -> Flow:
        _nothing_sold(self.name, sold_mwh)
        self.charger.charge(t, bought_mwh)
        return Flow(consumed_mwh=bought_mwh)


class ThermostatAgent:
    """Keeps the indoor temperature within [low_c, high_c]: bids the heating needed to stay
    above `low_c + margin_c` at the import price, and heating up to `high_c - margin_c` at a
    price that rises as the room cools towards the bottom of the band."""

    kind = "heat_pump"

    def __init__(self, name: str, heat_pump: HeatPump, low_c: float, high_c: float, margin_c: float = 0.2) -> None:
        if not low_c + 2 * margin_c < high_c - 2 * margin_c:
            raise DeviceError(f"comfort band [{low_c}, {high_c}] too narrow for margin {margin_c}")
        if not low_c <= heat_pump.indoor_c <= high_c:
            raise DeviceError(f"indoor temperature {heat_pump.indoor_c} starts outside the band [{low_c}, {high_c}]")
        self.name, self.heat_pump = name, heat_pump
        self.low_c, self.high_c, self.margin_c = low_c, high_c, margin_c

    def _energy_to_reach(self, t: int, target_c: float) -> float:
        hp = self.heat_pump
        share = (target_c - hp.free_running_c(t)) / hp.gain_k
        return min(max(share, 0.0), 1.0) * hp.full_mwh

    def orders(self, t: int, tariff: GridTariff) -> list[Order]:
        must = math.ceil(self._energy_to_reach(t, self.low_c + self.margin_c))
        most = math.floor(self._energy_to_reach(t, self.high_c - self.margin_c))
        orders = []
        if must:
            orders.append(Order(self.name, Side.BUY, must, tariff.import_price))
        if most > must:
            coldness = (self.high_c - self.heat_pump.indoor_c) / (self.high_c - self.low_c)
            orders.append(Order(self.name, Side.BUY, most - must, _flexible_limit(tariff, coldness)))
        return orders

    def settle(self, t: int, bought_mwh: int, sold_mwh: int) -> Flow:
        _nothing_sold(self.name, sold_mwh)
        self.heat_pump.run(t, bought_mwh)
        return Flow(consumed_mwh=bought_mwh)


class MinerAgent:
    """Buys only local surplus: its whole capacity at a fixed limit below the import price."""

    kind = "miner"

    def __init__(self, name: str, miner: Miner, limit: int) -> None:
        self.name, self.miner, self.limit = name, miner, limit

    def orders(self, t: int, tariff: GridTariff) -> list[Order]:
        if not tariff.feed_in < self.limit < tariff.import_price:
            raise DeviceError(
                f"{self.name}: limit {self.limit} must lie strictly between feed-in {tariff.feed_in} "
                f"and import price {tariff.import_price} to buy surplus only"
            )
        return [Order(self.name, Side.BUY, self.miner.max_mwh, self.limit)]

    def settle(self, t: int, bought_mwh: int, sold_mwh: int) -> Flow:
        _nothing_sold(self.name, sold_mwh)
        if not 0 <= bought_mwh <= self.miner.max_mwh:
            raise DeviceError(f"{self.name} can draw at most {self.miner.max_mwh} mWh, got {bought_mwh}")
        return Flow(consumed_mwh=bought_mwh)
