"""The simulators speak the protocols as the parsers (dsmr-parser, smllib) read them, and the
household register sources behave like meters: cumulative, never backwards."""
from __future__ import annotations

from decimal import Decimal

import pytest

from meter_oracle.drivers import FrameDecoder
from meter_oracle.dsmr import VERSIONS, detect_version, parse_telegram
from meter_oracle.errors import FrameRefused
from meter_oracle.reading import MeterFrame
from meter_oracle.simulators.dsmr_telegram import build_telegram
from meter_oracle.simulators.profiles import Battery, EvCharger, HeatPumpThermostat, PlainLoad, SolarPanel
from meter_oracle.simulators.sml_frame import ESC, build_frame, wrap_transport
from meter_oracle.sml import check_transport

T0 = 1_700_000_000.0  # 22:13 UTC


# what detection makes of each family's telegram (3 and 2.2 look alike, as do the aliases)
DETECTED = {"3": "2.2", "luxembourg-msn": "luxembourg", "austria-energienetze-steiermark": "sagemcom-t210-d"}
NO_IDENTITY = ("sweden", "sagemcom-t210-d", "austria-energienetze-steiermark")


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_dsmr_every_version_detected_and_parsed(version):
    raw = build_telegram("E0042", Decimal("1234567.891"), Decimal("42.5"), T0, version=version)
    assert detect_version(raw) == DETECTED.get(version, version)
    for forced in (None, version):
        frame = parse_telegram(raw, forced)
        identity = "" if version in NO_IDENTITY else "E0042"
        assert (frame.identity, frame.import_wh, frame.export_wh) == (identity, Decimal("1234567"), Decimal("42"))
    has_clock = version not in ("2.2", "3", "q3d")
    assert (frame.meter_time == T0) if has_clock else frame.meter_time is None


def test_dsmr_forced_version_checks_that_versions_crc():
    v22 = build_telegram("E0042", Decimal(1), Decimal(0), T0, version="2.2")
    assert parse_telegram(v22, "2.2").identity == "E0042"
    with pytest.raises(FrameRefused, match="CRC"):
        parse_telegram(v22, "5")  # DSMR 5 demands a CRC the 2.2 telegram lacks


def test_dsmr_unit_other_than_energy_is_refused():
    raw = build_telegram("E0042", Decimal(1000), Decimal(0), T0, version="2.2").replace(b"*kWh)", b"*m3)", 1)
    with pytest.raises(FrameRefused, match=r"register 1.8.1 has unit 'm3', expected kWh or Wh"):
        parse_telegram(raw)


@pytest.mark.parametrize("shift", range(4))
def test_sml_frame_with_escape_sequences_in_the_data(shift):
    """1b1b1b1b in the data, at every alignment: escaped where it sits on a 4-byte boundary,
    read back exactly, never mistaken for a frame start or end."""
    server_id = bytes(shift) + ESC * 2 + b"\x01\x01\x01\x01\x1a\x00"
    raw = build_frame(server_id, Decimal(0x1B1B1B1B), Decimal("0.5"))
    [frame] = FrameDecoder("sml").feed(raw + raw)[:1]
    assert isinstance(frame, MeterFrame), frame
    assert frame.identity == server_id.hex() and frame.import_wh == Decimal(0x1B1B1B1B)
    assert len([r for r in FrameDecoder("sml").feed(raw * 3) if isinstance(r, MeterFrame)]) == 3


def test_sml_transport_escaping_round_trip():
    payload = ESC + b"abcd" + b"xy" + ESC + b"zw" + ESC + ESC + b"\x00"
    raw = wrap_transport(payload)
    assert raw.count(ESC) == 1 + 2 * 3 + 1 + 1  # start, 3 aligned ones doubled, the unaligned one, end
    assert check_transport(raw) == payload


def test_sml_unit_other_than_wh_is_refused():
    raw = bytearray(build_frame(bytes(10), Decimal(1), Decimal(0)))
    raw[raw.index(bytes.fromhex("0100010800ff")) + 8 + 1] = 27  # 1.8.0 in W instead of Wh
    from smllib.crc import x25

    raw[-2:] = x25.get_crc(bytes(raw[:-2])).to_bytes(2, "big")
    [item] = FrameDecoder("sml").feed(bytes(raw))
    assert "register 1.8.0 has SML unit code 27, expected 30 (Wh)" in item.reason


PROFILES = {
    "plain load": (PlainLoad(T0), "import"),
    "solar panel": (SolarPanel(T0), "export"),
    "battery": (Battery(T0), "both"),
    "ev charger": (EvCharger(T0, plug_in_hour=18), "import"),
    "heat pump": (HeatPumpThermostat(T0, indoor_c=19.0), "import"),
}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_household_profiles_are_cumulative_over_a_day(name):
    source, direction = PROFILES[name]
    last = source.registers(T0)
    for step in range(1, 97):
        now = source.registers(T0 + 900 * step)
        assert now[0] >= last[0] and now[1] >= last[1], f"{name} ran backwards at step {step}"
        last = now
    imp, exp = last
    if direction in ("import", "both"):
        assert imp > 0
    if direction in ("export", "both"):
        assert exp > 0
    if direction == "import":
        assert exp == 0
    if direction == "export":
        assert imp == 0
    assert source.registers(T0) == last  # asking for the past never lowers a register
