from decimal import Decimal

import pytest

from neighbourhood.household import MeterRegister, self_supply
from neighbourhood.market import GridTariff, Order, Side

START = 1_773_964_800


def make_meter():
    meter = MeterRegister(START, 900, import_mwh=1_234_567_890, export_mwh=5_000)
    meter.record(900_000, 0)
    meter.record(0, 1_800_001)
    return meter


def test_registers_are_cumulative_exact_wh_and_rise_within_a_period():
    meter = make_meter()
    assert meter.registers(START) == (Decimal("1234567.890"), Decimal("5.000"))
    assert meter.registers(START + 450) == (Decimal("1234567.890") + 450, Decimal("5.000"))
    assert meter.registers(START + 900) == (Decimal("1235467.890"), Decimal("5.000"))
    assert meter.registers(START + 900 + 0.5) == (Decimal("1235467.890"), Decimal("6.000"))  # 1 Wh per 0.5 s
    assert meter.registers(START + 1800) == (Decimal("1235467.890"), Decimal("1805.001"))
    assert meter.recorded_until == START + 1800
    assert meter.totals_mwh == (1_235_467_890, 1_805_001)


def test_registers_never_run_backwards_and_stand_still_past_the_last_period():
    meter = make_meter()
    values = [meter.registers(START + s / 4) for s in range(0, 4 * 3000, 7)]
    assert values == sorted(values)
    assert meter.registers(START + 10_000) == meter.registers(START + 1800)
    meter.record(1000, 0)  # the simulation advances: the reader sees it
    assert meter.registers(START + 10_000)[0] == Decimal("1235468.890")


@pytest.mark.parametrize("now, message", [
    (START - 1, "before the meter's first recorded period"),
    (float("nan"), "finite number"),
    (float("inf"), "finite number"),
    ("1773964800", "finite number"),
])
def test_reading_at_a_bad_time_is_refused(now, message):
    with pytest.raises(ValueError, match=message):
        make_meter().registers(now)


@pytest.mark.parametrize("args, message", [
    ((-1, 0), "import_mwh must be a non-negative integer"),
    ((0, 1.5), "export_mwh must be a non-negative integer"),
    ((True, 0), "import_mwh must be a non-negative integer"),
])
def test_bad_period_energies_are_refused_and_nothing_recorded_is_lost(args, message):
    meter = make_meter()
    with pytest.raises(ValueError, match=message):
        meter.record(*args)
    assert meter.recorded_until == START + 1800
    assert meter.totals_mwh == (1_235_467_890, 1_805_001)


def test_bad_meter_setup_is_refused():
    with pytest.raises(ValueError, match="period_seconds must be a positive integer"):
        MeterRegister(START, 0)
    with pytest.raises(ValueError, match="import_mwh must be a non-negative integer"):
        MeterRegister(START, 900, import_mwh=-5)


def test_a_household_serves_its_own_must_run_load_before_the_market():
    tariff = GridTariff(import_price=300_000, feed_in=80_000)
    orders = [Order("h/load", Side.BUY, 500, 300_000), Order("h/ev", Side.BUY, 400, 150_000),
              Order("h/battery", Side.SELL, 300, 200_000), Order("h/solar", Side.SELL, 350, 80_000)]
    served, remaining = self_supply(orders, tariff)
    # the load takes the solar (cheapest ask) first, then 150 from the battery; the flexible EV waits for the market
    assert served == {"h/load": (500, 0), "h/battery": (0, 150), "h/solar": (0, 350)}
    assert remaining == [Order("h/ev", Side.BUY, 400, 150_000), Order("h/battery", Side.SELL, 150, 200_000)]
    assert self_supply([], tariff) == ({}, [])
