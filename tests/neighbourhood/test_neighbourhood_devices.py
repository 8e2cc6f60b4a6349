from fractions import Fraction

import pytest

from neighbourhood.agents import (
    BatteryAgent,
    EVAgent,
    LoadAgent,
    MinerAgent,
    SolarAgent,
    ThermostatAgent,
    price_between,
)
from neighbourhood.devices import (
    Battery,
    ChargingSession,
    DeviceError,
    EVCharger,
    HeatPump,
    Miner,
    PlainLoad,
    SolarPanel,
    outdoor_temperature,
)
from neighbourhood.market import GridTariff, Side

TARIFF = GridTariff(import_price=300_000, feed_in=80_000)
DAY = 1_773_964_800  # a midnight
P = 900


def at(hour):
    return DAY + int(hour * 3600)


# --- solar and loads -----------------------------------------------------------------------

def test_solar_is_dark_at_night_bounded_by_peak_and_seeded():
    panel = SolarPanel(peak_w=6000, seed=7)
    assert panel.production_mwh(at(2)) == panel.production_mwh(at(21)) == 0
    day = [panel.production_mwh(at(h / 4)) for h in range(96)]
    assert max(day) <= 6000 * P / 3.6 and sum(day) > 0
    assert day == [SolarPanel(peak_w=6000, seed=7).production_mwh(at(h / 4)) for h in range(96)]
    assert day != [SolarPanel(peak_w=6000, seed=8).production_mwh(at(h / 4)) for h in range(96)]
    assert max(range(96), key=day.__getitem__) in range(36, 60)  # around noon


def test_plain_load_is_seeded_and_peaks_in_the_evening():
    load = PlainLoad(base_w=200, peak_w=1000, seed=3)
    day = [load.demand_mwh(at(h / 4)) for h in range(96)]
    assert all(d > 0 for d in day)
    assert day == [PlainLoad(base_w=200, peak_w=1000, seed=3).demand_mwh(at(h / 4)) for h in range(96)]
    assert sum(day[76:82]) > 2 * sum(day[8:14])  # 19:00-20:30 against 02:00-03:30


@pytest.mark.parametrize("make, message", [
    (lambda: SolarPanel(peak_w=0, seed=1), "peak_w must be a positive number"),
    (lambda: SolarPanel(peak_w=100, seed=1, sunrise_h=19, sunset_h=6), "sunrise_h < sunset_h"),
    (lambda: PlainLoad(base_w=-1, peak_w=10, seed=1), "base_w must be a positive number"),
    (lambda: Miner(max_w=0), "max_w must be a positive number"),
])
def test_bad_device_parameters_are_refused(make, message):
    with pytest.raises(DeviceError, match=message):
        make()


def test_solar_and_load_agents_bid_their_energy_and_refuse_a_different_dispatch():
    solar = SolarAgent("h/solar", SolarPanel(peak_w=6000, seed=1))
    load = LoadAgent("h/load", PlainLoad(base_w=200, peak_w=500, seed=1))
    t = at(12)
    [ask], [bid] = solar.orders(t, TARIFF), load.orders(t, TARIFF)
    assert (ask.side, ask.limit) == (Side.SELL, TARIFF.feed_in)
    assert (bid.side, bid.limit) == (Side.BUY, TARIFF.import_price)
    assert solar.orders(at(1), TARIFF) == []
    assert solar.settle(t, 0, ask.quantity_mwh).produced_mwh == ask.quantity_mwh
    assert load.settle(t, bid.quantity_mwh, 0).consumed_mwh == bid.quantity_mwh
    with pytest.raises(DeviceError, match="h/solar produces"):
        solar.settle(t, 0, ask.quantity_mwh + 1)
    with pytest.raises(DeviceError, match="h/load needs"):
        load.settle(t, bid.quantity_mwh - 1, 0)
    with pytest.raises(DeviceError, match="h/load only buys"):
        load.settle(t, bid.quantity_mwh, 5)


# --- battery -------------------------------------------------------------------------------

def make_battery(soc=5_000_000):
    return Battery(capacity_mwh=10_000_000, max_charge_w=4000, max_discharge_w=4000, soc_mwh=soc,
                   min_soc_mwh=1_000_000, efficiency=Fraction(9, 10))


def test_battery_keeps_its_state_of_charge_within_limits_and_loses_energy():
    b = make_battery()
    assert b.charge_room_mwh() == b.max_charge_mwh == 1_000_000  # 4 kW for 15 min
    for _ in range(20):
        b.charge(b.charge_room_mwh())
        assert b.soc_mwh <= b.capacity_mwh
    assert b.charge_room_mwh() == 0 and b.capacity_mwh - b.soc_mwh < 2  # full but for rounding
    delivered = 0
    for _ in range(20):
        delivered += b.discharge_room_mwh()
        b.discharge(b.discharge_room_mwh())
        assert b.soc_mwh >= b.min_soc_mwh
    assert delivered <= (b.capacity_mwh - b.min_soc_mwh) * 9 // 10
    assert b.discharge_room_mwh() == 0 and b.soc_mwh - b.min_soc_mwh < 2  # only rounding left


def test_battery_refuses_more_than_its_room_and_nothing_changes():
    b = make_battery(soc=9_900_000)
    with pytest.raises(DeviceError, match="cannot charge"):
        b.charge(b.charge_room_mwh() + 1)
    with pytest.raises(DeviceError, match="cannot deliver"):
        b.discharge(b.discharge_room_mwh() + 1)
    assert b.soc_mwh == 9_900_000


@pytest.mark.parametrize("kwargs, message", [
    (dict(soc_mwh=11_000_000), "min_soc_mwh <= soc_mwh <= capacity_mwh"),
    (dict(soc_mwh=500_000), "min_soc_mwh <= soc_mwh <= capacity_mwh"),
    (dict(efficiency=0.9), "efficiency must be a Fraction"),
    (dict(efficiency=Fraction(11, 10)), "efficiency must be a Fraction in"),
    (dict(capacity_mwh=-1), "capacity_mwh must be a non-negative integer"),
])
def test_bad_battery_parameters_are_refused(kwargs, message):
    args = dict(capacity_mwh=10_000_000, max_charge_w=4000, max_discharge_w=4000, soc_mwh=5_000_000,
                min_soc_mwh=1_000_000, efficiency=Fraction(9, 10)) | kwargs
    with pytest.raises(DeviceError, match=message):
        Battery(**args)


def test_battery_agent_bids_lower_the_fuller_it_is_and_never_against_itself():
    empty, full = BatteryAgent("e", make_battery(1_500_000)), BatteryAgent("f", make_battery(9_500_000))
    (e_bid, e_ask), (f_bid, f_ask) = empty.orders(0, TARIFF), full.orders(0, TARIFF)
    assert e_bid.side is Side.BUY and e_ask.side is Side.SELL
    assert e_bid.limit > f_bid.limit and e_ask.limit > f_ask.limit
    assert max(e_bid.limit, f_bid.limit) < min(e_ask.limit, f_ask.limit)
    with pytest.raises(DeviceError, match="cannot charge and discharge"):
        empty.settle(0, 10, 10)


# --- EV ------------------------------------------------------------------------------------

def test_ev_session_that_cannot_be_met_is_refused():
    with pytest.raises(DeviceError, match="needs 12000000 mWh but can get at most 11000000"):
        EVCharger(11_000, [ChargingSession(at(0), at(1), 12_000_000)])  # 4 periods of 2.75 kWh
    with pytest.raises(DeviceError, match="sessions overlap"):
        EVCharger(11_000, [ChargingSession(at(0), at(4), 1000), ChargingSession(at(3), at(6), 1000)])
    with pytest.raises(DeviceError, match="period boundaries"):
        EVCharger(11_000, [ChargingSession(at(0) + 1, at(4), 1000)])


def test_ev_charges_by_departure_even_when_only_its_must_bids_are_served():
    charger = EVCharger(7400, [ChargingSession(at(0), at(8), 20_000_000)])
    agent = EVAgent("h/ev", charger)
    flexible_limits = []
    for k in range(32):
        t = at(k / 4)
        must = sum(o.quantity_mwh for o in agent.orders(t, TARIFF) if o.limit >= TARIFF.import_price)
        flexible_limits += [o.limit for o in agent.orders(t, TARIFF) if o.limit < TARIFF.import_price]
        agent.settle(t, must, 0)  # the market never serves the flexible part
    assert charger.delivered[charger.sessions[0]] == 20_000_000
    assert agent.orders(at(8), TARIFF) == []
    assert flexible_limits == sorted(flexible_limits) and flexible_limits[0] < flexible_limits[-1]


def test_ev_refuses_energy_when_unplugged_or_beyond_need():
    charger = EVCharger(7400, [ChargingSession(at(1), at(3), 1_000_000)])
    with pytest.raises(DeviceError, match="no car plugged in"):
        charger.charge(at(0), 10)
    with pytest.raises(DeviceError, match="still needed 1000000"):
        charger.charge(at(1), 1_000_001)
    assert charger.remaining_mwh(at(1)) == 1_000_000


# --- heat pump thermostat ------------------------------------------------------------------

def make_thermostat(indoor=21.0):
    hp = HeatPump(electric_w=2000, cop=3.2, loss_w_per_k=150, capacity_wh_per_k=5000, indoor_c=indoor)
    return ThermostatAgent("h/heat_pump", hp, low_c=20.0, high_c=22.5)


@pytest.mark.parametrize("serve", ["must", "all"])
def test_thermostat_stays_in_band_whether_served_the_minimum_or_everything(serve):
    agent = make_thermostat()
    temperatures = []
    for k in range(96):
        t = at(k / 4)
        orders = agent.orders(t, TARIFF)
        e = sum(o.quantity_mwh for o in orders if serve == "all" or o.limit >= TARIFF.import_price)
        agent.settle(t, e, 0)
        temperatures.append(agent.heat_pump.indoor_c)
    assert all(20.0 <= c <= 22.5 for c in temperatures)
    if serve == "must":
        assert min(temperatures) < 20.3  # it really drifted to the bottom of the band
    else:
        assert max(temperatures) > 22.0


def test_thermostat_bids_more_urgently_when_colder():
    cold, warm = make_thermostat(20.1), make_thermostat(22.0)
    t = at(3)
    assert any(o.limit == TARIFF.import_price for o in cold.orders(t, TARIFF))
    assert all(o.limit < TARIFF.import_price for o in warm.orders(t, TARIFF))
    assert outdoor_temperature(at(3)) < outdoor_temperature(at(15))


def test_thermostat_refuses_bad_band_and_heat_pump_refuses_overload():
    hp = HeatPump(electric_w=2000, cop=3.2, loss_w_per_k=150, capacity_wh_per_k=5000, indoor_c=25)
    with pytest.raises(DeviceError, match="starts outside the band"):
        ThermostatAgent("x", hp, 20, 22)
    with pytest.raises(DeviceError, match="too narrow"):
        ThermostatAgent("x", hp, 24.5, 25.0)
    with pytest.raises(DeviceError, match="heat pump cannot take"):
        hp.run(0, hp.full_mwh + 1)


# --- miner ---------------------------------------------------------------------------------

def test_miner_bids_its_capacity_below_the_import_price_only():
    agent = MinerAgent("m", Miner(max_w=10_000), limit=price_between(TARIFF, 0.1))
    [bid] = agent.orders(0, TARIFF)
    assert (bid.quantity_mwh, bid.limit) == (2_500_000, 102_000)
    with pytest.raises(DeviceError, match="strictly between feed-in"):
        MinerAgent("m", Miner(max_w=10_000), limit=TARIFF.import_price).orders(0, TARIFF)
    with pytest.raises(DeviceError, match="at most 2500000"):
        agent.settle(0, 2_500_001, 0)
