"""SunSpec over Modbus TCP: the pymodbus simulator read by the same driver as a real inverter,
battery or EV charger."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
from oracle_support import make_pipeline

from meter_oracle.errors import FrameRefused
from meter_oracle.simulators.profiles import EvCharger, FixedRegisters
from meter_oracle.simulators.sunspec_device import SunSpecServer
from meter_oracle.sunspec import SunSpecDriver


@pytest.fixture
def driver_for():
    drivers = []

    def make(server):
        d = SunSpecDriver(server.url, timeout_s=2)
        drivers.append(d)
        return d

    yield make
    for d in drivers:
        d.close()


def test_meter_model_203(driver_for, outbox):
    source = FixedRegisters("123456.7", "89.2")
    with SunSpecServer(source, manufacturer="SimCo", serial="BAT-0001", wh_scale=-1) as server:
        driver = driver_for(server)
        frame = driver.read()
        assert (frame.identity, frame.import_wh, frame.export_wh) == ("SimCo:BAT-0001", Decimal("123456.7"), Decimal("89.2"))
        assert frame.detail == "SunSpec model 203 (ac_meter_abcn)"
        pipeline, clock = make_pipeline(outbox, ["sunspec:SimCo:BAT-0001"], time.time())
        assert pipeline.accept(frame).import_mwh == 123_456_700
        source.import_wh = Decimal("123460.0")  # registers are refreshed on every read
        clock.now += 60
        assert pipeline.accept(driver.read()).import_mwh == 123_460_000


def test_modbus_rtu_behind_a_serial_gateway(driver_for):
    """RTU framing (CRC16 per request) over a ser2net-style TCP port."""
    with SunSpecServer(FixedRegisters("77.5", "0"), manufacturer="RtuCo", serial="R1", wh_scale=-1, rtu=True) as server:
        assert server.url.startswith("socket://")
        frame = driver_for(server).read()
    assert (frame.identity, frame.import_wh) == ("RtuCo:R1", Decimal("77.5"))


def test_inverter_model_103_counts_production_as_export(driver_for):
    with SunSpecServer(FixedRegisters(0, 98765), manufacturer="SolarSim", serial="INV-7", model=103) as server:
        frame = driver_for(server).read()
    assert (frame.identity, frame.import_wh, frame.export_wh) == ("SolarSim:INV-7", Decimal(0), Decimal(98765))


def test_ev_charger_profile_served_live(driver_for):
    start = time.time() - 3600
    with SunSpecServer(EvCharger(start, plug_in_hour=0), manufacturer="EVSim", serial="WB-1") as server:
        driver = driver_for(server)
        first = driver.read()
        time.sleep(1.1)
        second = driver.read()
    assert first.import_wh >= Decimal(10_000)  # an hour at 11 kW from the hour's start
    assert second.import_wh >= first.import_wh


def test_scale_factor_not_implemented_is_refused(driver_for):
    with SunSpecServer(FixedRegisters(1, 1), manufacturer="Bad", serial="SF", wh_scale=-0x8000) as server:
        with pytest.raises(FrameRefused, match="scale factor TotWh_SF is -32768: not implemented"):
            driver_for(server).read()


def test_unreachable_device_is_refused_not_crashed():
    driver = SunSpecDriver("tcp://127.0.0.1:1", timeout_s=0.5)
    with pytest.raises(FrameRefused, match="cannot connect to Modbus device tcp://127.0.0.1:1"):
        driver.read()
    driver.close()


# -- every energy model of pysunspec2's definitions ------------------------------------------

from meter_oracle import sunspec_models as models  # noqa: E402

INVERTERS = (101, 102, 103, 111, 112, 113)


@pytest.mark.parametrize("model", sorted(models.ENERGY))
def test_every_energy_model_over_modbus_tcp(driver_for, model):
    """Integer + scale factor (101-103, 201-204, 220, 701 uint64) and float (111-113, 211-214)."""
    source = FixedRegisters("4567.8", "1234.5")
    with SunSpecServer(source, manufacturer="ModelCo", serial=f"M{model}", model=model, wh_scale=-1) as server:
        frame = driver_for(server).read()
    assert frame.identity == f"ModelCo:M{model}"
    assert frame.detail.startswith(f"SunSpec model {model} (")
    if model in INVERTERS:  # an inverter only produces: its WH register is export
        assert (frame.import_wh, frame.export_wh) == (Decimal(0), Decimal("1234.5"))
    else:
        assert (frame.import_wh, frame.export_wh) == (Decimal("4567.8"), Decimal("1234.5"))


def test_discovery_lists_the_models_and_prefers_the_meter(driver_for):
    source = FixedRegisters("100", "2000")
    with SunSpecServer(source, manufacturer="HybridCo", serial="H1", models=(103, 701, 213)) as server:
        driver = driver_for(server)
        assert [e.id for e in driver.models()] == [1, 103, 701, 213]
        assert [e.length for e in driver.models()] == [66, 50, 153, 124]
        assert driver.read().detail.startswith("SunSpec model 213")  # the grid meter
        inverter = SunSpecDriver(server.url, timeout_s=2, model=103)
        try:
            assert inverter.read().detail.startswith("SunSpec model 103")
        finally:
            inverter.close()


def test_a_device_without_the_configured_model_is_refused(driver_for):
    with SunSpecServer(FixedRegisters(1, 1), manufacturer="X", serial="Y", model=203) as server:
        with pytest.raises(FrameRefused, match=r"SunSpec device has models \[1, 203\]: no common model 1 or no model 701"):
            SunSpecDriver(server.url, timeout_s=2, model=701).read()


def test_offsets_come_from_pysunspec2():
    """The layout is pysunspec2's: the same offsets as the SunSpec model 203 document."""
    lay = models.layout(203)
    assert (lay.length, lay.points["TotWhExp"].offset, lay.points["TotWhImp"].offset, lay.points["TotWh_SF"].offset) == \
        (105, 38, 46, 54)
    assert models.layout(701).points["TotWhInj"].type == "uint64"


def test_float_meter_not_implemented_energy_is_refused():
    """A float meter whose TotWhImp is NaN (not implemented) gives no reading."""
    from meter_oracle.sunspec import decode

    common = [0] * 68
    common[2:4] = [0x4142, 0]  # "AB"
    common[50:52] = [0x3031, 0]  # "01"
    lay = models.layout(213)
    regs = [0] * (lay.length + 2)
    for name, value in (("TotWhImp", float("nan")), ("TotWhExp", 5.0), ("W", 0.0)):
        p = lay.points[name]
        regs[p.offset : p.offset + 2] = models.encode(p, value)
    with pytest.raises(FrameRefused, match="SunSpec TotWhImp of model 213 is not implemented"):
        decode(213, common, regs)
