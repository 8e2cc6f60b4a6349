"""Double auction with one uniform clearing price per period, the grid as outside option.

Units: energy in integer milliwatt-hours (mWh, the project's unit), prices in integer
micro-euros per kWh (30 ct/kWh = 300_000). Quantities are divisible down to 1 mWh.

Conventions:
- The grid sells without limit at `import_price` and buys without limit at `feed_in`, so no
  buyer pays more locally than the grid asks and no seller gets less than the grid pays: a bid's
  effective limit is `min(limit, import_price)`, an ask's `max(limit, feed_in)`.
- Bids are ranked by effective limit descending, asks ascending; equal limits rank by agent
  name, then by position in the order list (deterministic tie-breaking, no randomness).
- Bids and asks are matched down the two rankings while the next bid's effective limit is at
  least the next ask's. The last bid and ask that trade are marginal; the clearing price is the
  midpoint of their effective limits, rounded down. Every matched bid's limit is then >= the
  price and every matched ask's limit <= it, and at that price demand and supply meet:
  traded quantity == min(demand at price, supply at price).
- What a bid does not get locally it buys from the grid if its limit is >= `import_price`
  (a must-run need); what an ask does not sell locally goes to the grid if its limit is
  <= `feed_in` (must-sell generation). Other remainders are simply not executed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

MWH_PER_KWH = 1_000_000
MICRO = 1_000_000


class Side(Enum):
    BUY = "buy"
    SELL = "sell"


class InvalidOrder(ValueError):
    """An order or tariff with a field out of range; the message names the field."""


def _require_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOrder(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidOrder(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class GridTariff:
    """The outside option: the grid's import price and feed-in tariff (micro-euro per kWh)."""

    import_price: int
    feed_in: int

    def __post_init__(self) -> None:
        _require_int("import_price", self.import_price, 0)
        _require_int("feed_in", self.feed_in, 0)
        if self.feed_in > self.import_price:
            raise InvalidOrder(
                f"feed_in ({self.feed_in}) must not exceed import_price ({self.import_price})"
            )

    @property
    def span(self) -> int:
        return self.import_price - self.feed_in


@dataclass(frozen=True)
class Order:
    """A bid (BUY) or ask (SELL) of `quantity_mwh` at limit price `limit` (micro-euro/kWh)."""

    agent: str
    side: Side
    quantity_mwh: int
    limit: int

    def __post_init__(self) -> None:
        if not isinstance(self.agent, str) or not self.agent:
            raise InvalidOrder(f"agent must be a non-empty string, got {self.agent!r}")
        if not isinstance(self.side, Side):
            raise InvalidOrder(f"side must be Side.BUY or Side.SELL, got {self.side!r}")
        _require_int(f"quantity_mwh of {self.agent}", self.quantity_mwh, 1)
        _require_int(f"limit of {self.agent}", self.limit, 0)

    def effective_limit(self, tariff: GridTariff) -> int:
        if self.side is Side.BUY:
            return min(self.limit, tariff.import_price)
        return max(self.limit, tariff.feed_in)


@dataclass(frozen=True)
class Fill:
    """What one order got: `local_mwh` traded at the clearing price, `grid_mwh` with the grid."""

    order: Order
    local_mwh: int
    grid_mwh: int

    @property
    def total_mwh(self) -> int:
        return self.local_mwh + self.grid_mwh


@dataclass(frozen=True)
class Clearing:
    """The result of one auction; `fills` are in the order of the submitted orders."""

    tariff: GridTariff
    price: int | None  # None when nothing traded locally
    traded_mwh: int
    marginal_bid: int | None  # effective limits of the marginal bid and ask
    marginal_ask: int | None
    fills: tuple[Fill, ...]

    @property
    def grid_import_mwh(self) -> int:
        return sum(f.grid_mwh for f in self.fills if f.order.side is Side.BUY)

    @property
    def grid_export_mwh(self) -> int:
        return sum(f.grid_mwh for f in self.fills if f.order.side is Side.SELL)

    def agent_totals(self) -> dict[str, tuple[int, int]]:
        """Per agent: (bought, sold) in mWh, local and grid together."""
        totals: dict[str, tuple[int, int]] = {}
        for f in self.fills:
            bought, sold = totals.get(f.order.agent, (0, 0))
            if f.order.side is Side.BUY:
                bought += f.total_mwh
            else:
                sold += f.total_mwh
            totals[f.order.agent] = (bought, sold)
        return totals

    def demand_at(self, price: int) -> int:
        """Bid quantity whose effective limit is >= price."""
        return sum(
            f.order.quantity_mwh for f in self.fills
            if f.order.side is Side.BUY and f.order.effective_limit(self.tariff) >= price
        )

    def supply_at(self, price: int) -> int:
        """Ask quantity whose effective limit is <= price."""
        return sum(
            f.order.quantity_mwh for f in self.fills
            if f.order.side is Side.SELL and f.order.effective_limit(self.tariff) <= price
        )


def energy_cost_eur(quantity_mwh: int, price: int) -> Decimal:
    """Exact euros for `quantity_mwh` at `price` micro-euro per kWh."""
    return Decimal(quantity_mwh * price) / (MWH_PER_KWH * MICRO)


def clear(orders: Sequence[Order], tariff: GridTariff) -> Clearing:
    """Run one uniform-price double auction over `orders` (see the module docstring)."""
    for i, order in enumerate(orders):
        if not isinstance(order, Order):
            raise InvalidOrder(f"orders[{i}] is not an Order: {order!r}")
    bids = sorted(
        (i for i, o in enumerate(orders) if o.side is Side.BUY),
        key=lambda i: (-orders[i].effective_limit(tariff), orders[i].agent, i),
    )
    asks = sorted(
        (i for i, o in enumerate(orders) if o.side is Side.SELL),
        key=lambda i: (orders[i].effective_limit(tariff), orders[i].agent, i),
    )
    local = [0] * len(orders)
    b = a = 0
    bid_left = orders[bids[0]].quantity_mwh if bids else 0
    ask_left = orders[asks[0]].quantity_mwh if asks else 0
    marginal_bid = marginal_ask = None
    traded = 0
    while b < len(bids) and a < len(asks):
        bid, ask = orders[bids[b]], orders[asks[a]]
        bid_limit, ask_limit = bid.effective_limit(tariff), ask.effective_limit(tariff)
        if bid_limit < ask_limit:
            break
        quantity = min(bid_left, ask_left)
        local[bids[b]] += quantity
        local[asks[a]] += quantity
        traded += quantity
        marginal_bid, marginal_ask = bid_limit, ask_limit
        bid_left -= quantity
        ask_left -= quantity
        if bid_left == 0:
            b += 1
            bid_left = orders[bids[b]].quantity_mwh if b < len(bids) else 0
        if ask_left == 0:
            a += 1
            ask_left = orders[asks[a]].quantity_mwh if a < len(asks) else 0
    price = None if traded == 0 else (marginal_bid + marginal_ask) // 2
    fills = []
    for i, order in enumerate(orders):
        remainder = order.quantity_mwh - local[i]
        to_grid = (
            order.limit >= tariff.import_price if order.side is Side.BUY
            else order.limit <= tariff.feed_in
        )
        fills.append(Fill(order, local[i], remainder if to_grid else 0))
    return Clearing(tariff, price, traded, marginal_bid, marginal_ask, tuple(fills))
