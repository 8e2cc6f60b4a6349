"""Each bad input refused with an error naming what was wrong; what was accepted stays."""
from __future__ import annotations

from decimal import Decimal

import pytest
from oracle_support import DOMAIN, key_for, make_pipeline

from meter_oracle.drivers import FrameDecoder
from meter_oracle.errors import ClockSkew, ImplausiblePower, RegisterRegression, UnknownMeter
from meter_oracle.signing import RustCoreSigner, address_of
from meter_oracle.simulators.dsmr_telegram import build_telegram
from meter_oracle.simulators.sml_frame import build_frame

T0 = 1_700_000_000.0
METER = "E0099887766"
LABEL = f"dsmr:{METER}"


def frame(import_wh, export_wh="0", now=T0, power_w=None):
    [item] = FrameDecoder("dsmr").feed(build_telegram(METER, Decimal(import_wh), Decimal(export_wh), now,
                                                       power_w=power_w and Decimal(power_w)))
    return item


@pytest.fixture
def accepted(outbox):
    """A pipeline that has accepted one reading (1000 Wh import) at T0."""
    pipeline, clock = make_pipeline(outbox, [LABEL], T0, max_power_w=10_000)
    first = pipeline.accept(frame("1000"))
    assert first is not None
    return pipeline, clock, first


def test_accepted_reading_is_signed_by_the_meter_key(accepted, outbox):
    pipeline, _, first = accepted
    assert first.period == int(T0) // 900 and first.timestamp == int(T0)
    assert first.import_mwh == 1_000_000 and first.export_mwh == 0
    assert RustCoreSigner(DOMAIN).recover(first.reading, first.signature) == address_of(key_for(LABEL))
    assert outbox.counts() == {}  # no node configured yet: nothing to deliver


def test_register_running_backwards(accepted, outbox):
    pipeline, clock, _ = accepted
    clock.now = T0 + 60
    with pytest.raises(RegisterRegression, match=r"import register of dsmr:E0099887766 ran backwards: 999000 mWh < 1000000 mWh"):
        pipeline.accept(frame("999", now=clock.now))
    assert outbox.reading_count() == 1


def test_implausible_power_from_the_energy_delta(accepted):
    pipeline, clock, _ = accepted
    clock.now = T0 + 60
    # 1000 Wh in 60 s is 60 kW average; the meter point allows 10 kW
    with pytest.raises(ImplausiblePower, match=r"1000000 mWh in 60 s is 60000 W average \(limit 10000 W\)"):
        pipeline.accept(frame("2000", now=clock.now))
    assert pipeline.accept(frame("1100", now=clock.now)) is not None  # 6 kW is fine


def test_implausible_power_reported_by_the_meter(accepted):
    pipeline, clock, _ = accepted
    clock.now = T0 + 60
    with pytest.raises(ImplausiblePower, match=r"meter reports 25000.000 W \(limit 10000 W\)"):
        pipeline.accept(frame("1001", now=clock.now, power_w=25_000))


def test_clock_skew_between_meter_and_oracle(accepted):
    pipeline, clock, _ = accepted
    clock.now = T0 + 60
    with pytest.raises(ClockSkew, match=r"differ by 3600 s \(limit 300 s\)"):
        pipeline.accept(frame("1001", now=clock.now - 3600))


def test_oracle_clock_going_backwards(accepted):
    pipeline, clock, _ = accepted
    clock.now = T0 - 10
    with pytest.raises(ClockSkew, match="oracle clock not after the last reading"):
        pipeline.accept(frame("1001", now=clock.now))


def test_unknown_meter(outbox):
    pipeline, _ = make_pipeline(outbox, [LABEL], T0)
    [other] = FrameDecoder("sml").feed(build_frame(bytes.fromhex("0a01aabbccdd00112233"), Decimal(5), Decimal(0)))
    with pytest.raises(UnknownMeter, match=r"unknown meter sml:0a01aabbccdd00112233 \(0x[0-9a-f]{64}\): no key configured"):
        pipeline.accept(other)


def test_corrupt_frame_between_good_ones(outbox):
    """A frame with one flipped digit is refused for its CRC and recorded; the readings before
    and after it are signed and kept."""
    pipeline, clock = make_pipeline(outbox, [LABEL], T0)
    good1 = build_telegram(METER, Decimal(1000), Decimal(0), T0)
    bad = bytearray(build_telegram(METER, Decimal(1500), Decimal(0), T0 + 60))
    bad[bad.index(b"1-0:1.8.1(") + 17] ^= 0x01  # the digit 5 of 000001.500 becomes 4
    good2 = build_telegram(METER, Decimal(1600), Decimal(0), T0 + 120)
    results = FrameDecoder("dsmr").feed(good1 + bytes(bad) + good2)
    assert len(results) == 3
    for n, (item, now) in enumerate(zip(results, (T0, T0 + 60, T0 + 120)), 1):
        clock.now = now
        pipeline.process("p1", "dsmr", n, item)
    assert outbox.reading_count() == 2
    [(_, _, meter, reason)] = outbox.refusals()
    assert meter is None and reason.startswith("CRC mismatch (DSMR 5): telegram says")


def test_refused_checks_are_recorded_with_the_meter(accepted, outbox):
    pipeline, clock, _ = accepted
    clock.now = T0 + 60
    pipeline.process("p1", "dsmr", 7, frame("10", now=clock.now))
    [(source, protocol, meter, reason)] = outbox.refusals()
    assert (source, protocol, meter) == ("p1", "dsmr", LABEL) and "ran backwards" in reason


def test_min_interval_skips_without_refusing(accepted, outbox):
    pipeline, clock, _ = accepted
    clock.now = T0 + 1
    assert pipeline.accept(frame("1001", now=clock.now), min_interval_s=60) is None
    clock.now = T0 + 61
    assert pipeline.accept(frame("1001", now=clock.now), min_interval_s=60) is not None
    assert outbox.reading_count() == 2 and outbox.refusals() == []


def test_a_rotated_key_signs_the_readings_from_its_period(outbox):
    """The meter point operator rotated the gateway key from the next period (MeterRegistry.rotateKey):
    the oracle signs up to then with the old key, from then on with the new one."""
    from oracle_support import Clock

    from meter_oracle.keystore import Keyring, MeterKey
    from meter_oracle.pipeline import Pipeline

    new_key = key_for("rotated")
    rotate_from = int(T0) // 900 + 1
    clock = Clock(T0)
    keyring = Keyring([MeterKey(LABEL, key_for(LABEL), 10_000, rotation=(rotate_from, new_key))])
    pipeline = Pipeline(outbox, keyring, RustCoreSigner(DOMAIN), clock=clock)
    before = pipeline.accept(frame("1000"))
    later = rotate_from * 900 + 30
    clock.now = later
    after = pipeline.accept(frame("1001", now=later))
    assert before is not None and after is not None and after.period == rotate_from
    assert RustCoreSigner(DOMAIN).recover(before.reading, before.signature) == address_of(key_for(LABEL))
    assert RustCoreSigner(DOMAIN).recover(after.reading, after.signature) == address_of(new_key)
