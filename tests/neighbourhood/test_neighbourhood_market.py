import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neighbourhood.market import GridTariff, InvalidOrder, Order, Side, clear, energy_cost_eur

WIDE = GridTariff(import_price=1000, feed_in=0)  # no clamping by the grid in the hand examples
TARIFF = GridTariff(import_price=300_000, feed_in=80_000)


def buy(agent, q, limit):
    return Order(agent, Side.BUY, q, limit)


def sell(agent, q, limit):
    return Order(agent, Side.SELL, q, limit)


def test_clears_where_supply_meets_demand():
    orders = [buy("b30", 100, 30), buy("b20", 100, 20), buy("b10", 100, 10),
              sell("s05", 150, 5), sell("s15", 100, 15), sell("s25", 100, 25)]
    c = clear(orders, WIDE)
    # b30 and b20 (200) meet s05 and half of s15; b10 (10) is below the next ask (15)
    assert c.traded_mwh == 200
    assert (c.marginal_bid, c.marginal_ask) == (20, 15)
    assert c.price == 17  # midpoint 17.5 rounded down
    assert [f.local_mwh for f in c.fills] == [100, 100, 0, 150, 50, 0]
    assert all(f.grid_mwh == 0 for f in c.fills)
    assert min(c.demand_at(c.price), c.supply_at(c.price)) == 200
    assert c.agent_totals()["s15"] == (0, 50)


def test_nothing_trades_when_every_ask_is_above_every_bid():
    c = clear([buy("b", 100, 10), sell("s", 100, 11)], WIDE)
    assert (c.price, c.traded_mwh, c.marginal_bid, c.marginal_ask) == (None, 0, None, None)
    assert clear([], WIDE).price is None
    assert clear([buy("only", 5, 10)], WIDE).traded_mwh == 0


def test_grid_caps_limits_and_serves_must_run_remainders():
    load = buy("load", 1000, TARIFF.import_price)
    urgent = buy("urgent", 100, 900_000)  # above the import price: pays at most the grid's price
    miner = buy("miner", 500, 100_000)  # flexible: no grid
    solar = sell("solar", 300, TARIFF.feed_in)
    battery = sell("battery", 200, 250_000)
    c = clear([load, urgent, miner, solar, battery], TARIFF)
    # effective bids: urgent 300k (agent "urgent" after "load" on the tie), load 300k, miner 100k
    assert c.traded_mwh == 500
    assert (c.marginal_bid, c.marginal_ask) == (300_000, 250_000)
    assert c.price == 275_000
    by_agent = {f.order.agent: (f.local_mwh, f.grid_mwh) for f in c.fills}
    assert by_agent == {"load": (500, 500), "urgent": (0, 100), "miner": (0, 0),
                        "solar": (300, 0), "battery": (200, 0)}
    assert (c.grid_import_mwh, c.grid_export_mwh) == (600, 0)


def test_unsold_generation_goes_to_the_grid_but_not_a_priced_ask():
    c = clear([sell("solar", 300, 0), sell("battery", 200, 250_000), buy("miner", 100, 90_000)], TARIFF)
    assert c.price == 85_000  # midpoint of the miner's 90k and the solar's effective 80k
    fills = {f.order.agent: (f.local_mwh, f.grid_mwh) for f in c.fills}
    assert fills == {"solar": (100, 200), "battery": (0, 0), "miner": (100, 0)}
    assert c.grid_export_mwh == 200


def test_ties_are_broken_by_agent_name_whatever_the_submission_order():
    orders = [buy("b", 100, 50), buy("a", 100, 50), sell("s", 150, 10)]
    for permutation in (orders, orders[::-1], [orders[1], orders[2], orders[0]]):
        c = clear(permutation, WIDE)
        assert c.agent_totals() == {"a": (100, 0), "b": (50, 0), "s": (0, 150)}


@pytest.mark.parametrize("make, message", [
    (lambda: buy("a", 0, 10), "quantity_mwh of a must be >= 1"),
    (lambda: buy("a", -5, 10), "quantity_mwh of a must be >= 1"),
    (lambda: buy("a", 1.5, 10), "quantity_mwh of a must be an integer"),
    (lambda: buy("a", True, 10), "quantity_mwh of a must be an integer"),
    (lambda: sell("a", 5, -1), "limit of a must be >= 0"),
    (lambda: sell("a", 5, 2.0), "limit of a must be an integer"),
    (lambda: buy("", 5, 1), "agent must be a non-empty string"),
    (lambda: Order("a", "buy", 5, 1), "side must be Side.BUY or Side.SELL"),
    (lambda: GridTariff(import_price=10, feed_in=11), "feed_in (11) must not exceed import_price (10)"),
    (lambda: GridTariff(import_price=-1, feed_in=0), "import_price must be >= 0"),
])
def test_bad_orders_and_tariffs_are_refused_with_the_field_named(make, message):
    with pytest.raises(InvalidOrder, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_clear_refuses_a_non_order_and_names_its_position():
    with pytest.raises(InvalidOrder, match=r"orders\[1\] is not an Order"):
        clear([buy("a", 1, 1), ("b", "buy", 1, 1)], WIDE)


def test_energy_cost_is_exact_euros():
    assert str(energy_cost_eur(1_000_000, 300_000)) == "0.3"  # 1 kWh at 30 ct
    assert str(energy_cost_eur(1, 1)) == "1E-12"


orders_strategy = st.lists(
    st.builds(Order,
              agent=st.sampled_from(["a", "b", "c", "d", "e"]),
              side=st.sampled_from([Side.BUY, Side.SELL]),
              quantity_mwh=st.integers(1, 5000),
              limit=st.integers(0, 400_000)),
    max_size=30,
)


@settings(max_examples=50, deadline=None)
@given(orders=orders_strategy)
def test_market_invariants(orders):
    c = clear(orders, TARIFF)
    bought = sum(f.local_mwh for f in c.fills if f.order.side is Side.BUY)
    sold = sum(f.local_mwh for f in c.fills if f.order.side is Side.SELL)
    assert bought == sold == c.traded_mwh
    for f in c.fills:
        assert 0 <= f.local_mwh and f.total_mwh <= f.order.quantity_mwh
        if f.local_mwh:  # nobody matched above its bid or below its ask
            if f.order.side is Side.BUY:
                assert f.order.limit >= c.price
            else:
                assert f.order.limit <= c.price
    if c.traded_mwh == 0:
        assert c.price is None
        return
    assert TARIFF.feed_in <= c.marginal_ask <= c.price <= c.marginal_bid <= TARIFF.import_price
    assert c.traded_mwh == min(c.demand_at(c.price), c.supply_at(c.price))
    # the most that can trade at any single price is what traded (checked by brute force)
    candidates = {o.effective_limit(TARIFF) for o in orders}
    assert c.traded_mwh == max(min(c.demand_at(p), c.supply_at(p)) for p in candidates)
    # at the price no willing buyer and willing seller are both left over
    left_bid = any(f.order.side is Side.BUY and f.order.effective_limit(TARIFF) > c.price
                   and f.local_mwh < f.order.quantity_mwh for f in c.fills)
    left_ask = any(f.order.side is Side.SELL and f.order.effective_limit(TARIFF) < c.price
                   and f.local_mwh < f.order.quantity_mwh for f in c.fills)
    assert not (left_bid and left_ask)


@settings(max_examples=25, deadline=None)
@given(orders=orders_strategy, seed=st.integers(0, 1000))
def test_result_per_agent_does_not_depend_on_submission_order(orders, seed):
    shuffled = list(orders)
    random.Random(seed).shuffle(shuffled)
    a, b = clear(orders, TARIFF), clear(shuffled, TARIFF)
    assert (a.price, a.traded_mwh, a.agent_totals()) == (b.price, b.traded_mwh, b.agent_totals())
