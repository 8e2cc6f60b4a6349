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
        assert frame.detail == "SunSpec model 203"
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
