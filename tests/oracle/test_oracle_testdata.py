"""Every capture in shared/testdata, over a real byte stream (TCP socket and pty), through the
same driver that reads hardware, decoded as its expected.json says."""
from __future__ import annotations

from decimal import Decimal

import pytest
from oracle_support import ISKRA, TESTDATA, load_expected, make_pipeline, read_stream

from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame, meter_id
from meter_oracle.simulators.stream_server import PtyFrameServer, TcpFrameServer

SERVERS = [TcpFrameServer, PtyFrameServer]


@pytest.mark.parametrize("server_cls", SERVERS)
def test_dsmr_captures_over_a_stream(server_cls):
    expected = load_expected("dsmr")
    names = sorted(expected)
    results = read_stream(server_cls, "dsmr", [(TESTDATA / "dsmr" / n).read_bytes() for n in names], len(names))
    for name, item in zip(names, results):
        exp = expected[name]
        if exp["valid"]:
            assert isinstance(item, MeterFrame), f"{name}: {item}"
            assert item.identity == exp["meter_id_hex"]
            assert item.import_wh == Decimal(exp["import_wh"]) and item.export_wh == Decimal(exp["export_wh"])
            assert item.import_mwh == exp["import_wh"] * 1000
            assert item.meter_id == meter_id("dsmr", exp["meter_id_hex"])
        else:
            assert isinstance(item, Dropped), f"{name} was accepted"
            assert "CRC mismatch" in item.reason


@pytest.mark.parametrize("server_cls", SERVERS)
def test_sml_captures_over_a_stream(server_cls):
    expected = load_expected("sml")
    names = sorted(expected)
    results = read_stream(server_cls, "sml", [(TESTDATA / "sml" / n).read_bytes() for n in names], len(names))
    for name, item in zip(names, results):
        exp = expected[name]
        if exp["valid"]:
            assert isinstance(item, MeterFrame), f"{name}: {item}"
            assert item.import_wh == Decimal(exp["import_wh"]) and item.export_wh == Decimal(exp["export_wh"])
            assert item.identity == item.identity.lower() and len(item.identity) == 20
        else:
            assert isinstance(item, Dropped), f"{name} was accepted"
            assert item.reason.startswith(exp["error"] + ":"), item.reason


def test_corrupt_telegram_refused_and_earlier_reading_kept(outbox):
    """Good Iskra telegram, then the corrupted one: the first is signed and kept, the second
    refused naming the CRC, with its raw bytes kept for inspection."""
    good = (TESTDATA / "dsmr" / "v5_iskra.txt").read_bytes()
    bad = (TESTDATA / "dsmr" / "v5_iskra_corrupted_crc.txt").read_bytes()
    items = read_stream(TcpFrameServer, "dsmr", [good, bad], 2)
    first = items[0]
    pipeline, _ = make_pipeline(outbox, [f"dsmr:{ISKRA}"], now=first.meter_time)
    for n, item in enumerate(items, 1):
        pipeline.process("p1", "dsmr", n, item)
    assert outbox.reading_count() == 1
    assert outbox.last_reading(first.meter_id).import_mwh == 6_825_000
    [(source, protocol, meter, reason)] = outbox.refusals()
    assert (source, protocol) == ("p1", "dsmr") and "CRC mismatch" in reason and "6EEE" in reason
