"""IEC 62056-21 optical readout (D0, mode C): the driver requests, acknowledges and reads the data
block from a simulated meter over a real TCP socket and a pty; BCC and registers checked."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from meter_oracle.d0 import ACK, REQUEST, bcc, parse_readout
from meter_oracle.drivers import FrameDecoder, StreamDriver
from meter_oracle.errors import FrameRefused
from meter_oracle.reading import MeterFrame
from meter_oracle.simulators.d0_meter import D0Meter, D0PtyServer, D0TcpServer, build_readout
from meter_oracle.simulators.profiles import FixedRegisters


def read_d0(server, n: int, **options) -> list:
    driver = StreamDriver(server.url, "d0", **options)
    stop = threading.Event()
    out: list = []

    def consume() -> None:
        for item in driver.results(stop):
            out.append(item)
            if len(out) == n:
                stop.set()
                return

    reader = threading.Thread(target=consume)
    reader.start()
    reader.join(timeout=30)
    stop.set()
    reader.join(timeout=10)
    return out


@pytest.mark.parametrize("server_cls", [D0TcpServer, D0PtyServer])
def test_mode_c_readout_over_a_real_stream(server_cls):
    source = FixedRegisters("1234567.8", "4321.0")
    meter = D0Meter("1ESY1160669", source)
    with server_cls(meter) as server:
        first, second = read_d0(server, 2)
    for frame in (first, second):
        assert isinstance(frame, MeterFrame), frame
        assert (frame.protocol, frame.identity) == ("d0", "1ESY1160669")
        assert (frame.import_wh, frame.export_wh) == (Decimal("1234567.8"), Decimal("4321.0"))
        assert frame.detail.startswith("D0 mode C ESY")
    assert meter.requests >= 2  # the driver asked for each readout


def test_tariff_registers_and_configured_identity():
    ident, block = build_readout("", Decimal(5000), Decimal(1500), tariffs=True)
    [frame] = FrameDecoder("d0", identity="DE-HOLLEY-7").feed(ident + block)
    assert (frame.identity, frame.import_wh, frame.export_wh) == ("DE-HOLLEY-7", Decimal(5000), Decimal(1500))
    [bare] = FrameDecoder("d0").feed(ident + block)
    assert bare.identity == "" and "set the device's identity in the configuration" in bare.detail


def test_bcc_mismatch_and_bad_units_are_refused():
    ident, block = build_readout("M1", Decimal(5000), Decimal(0))
    broken = block[:5] + bytes([block[5] ^ 0x01]) + block[6:]
    with pytest.raises(FrameRefused, match=r"BCC mismatch: readout says [0-9a-f]{2}, computed [0-9a-f]{2}"):
        parse_readout(ident + broken)
    bad_unit = ident + block.replace(b"*kWh)", b"*kvarh)", 1)
    data = bad_unit[bad_unit.index(b"\x02") + 1 : -1]
    bad_unit = bad_unit[:-1] + bytes([bcc(data)])
    with pytest.raises(FrameRefused, match="register 1.8.0 has unit 'kvarh', expected kWh or Wh"):
        parse_readout(bad_unit)


def test_framer_resynchronises_after_a_cut_readout():
    ident, block = build_readout("M1", Decimal(1), Decimal(0))
    items = FrameDecoder("d0").feed(b"junk" + ident + block[:10] + ident + block)
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["Dropped", "Dropped", "MeterFrame"], items
    assert items[0].reason == "4 bytes outside any D0 readout"
    assert items[1].reason.startswith("D0 readout truncated")


def test_a_silent_meter_is_reported_not_hung():
    """A TCP port that accepts but never answers the request: no reading, the driver keeps asking."""
    import socket

    sock = socket.create_server(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{sock.getsockname()[1]}"
    driver = StreamDriver(url, "d0")
    stop = threading.Event()
    got: list = []
    t = threading.Thread(target=lambda: got.extend(driver.results(stop)))
    t.start()
    conn, _ = sock.accept()
    conn.settimeout(10)
    assert conn.recv(16).startswith(REQUEST)
    stop.set()
    t.join(timeout=15)
    assert not t.is_alive() and got == []
    conn.close()
    sock.close()
    assert ACK == 0x06


def test_cli_parse_and_config_know_d0(tmp_path):
    import json
    import subprocess
    import sys

    from oracle_support import REPO, write_deployment

    from meter_oracle.config import load_config

    capture = tmp_path / "readout.bin"
    capture.write_bytes(b"".join(build_readout("1ESY42", Decimal(7500), Decimal(0))))
    run = subprocess.run([sys.executable, "-m", "meter_oracle.cli", "parse", "--protocol", "d0", str(capture)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    line = json.loads(run.stdout)
    assert (line["valid"], line["identity"], line["import_mwh"]) == (True, "1ESY42", 7_500_000)
    write_deployment(tmp_path)
    (tmp_path / "o.toml").write_text('deployment = "deployment.json"\n'
                                     '[[devices]]\nname = "optical"\nprotocol = "d0"\nurl = "/dev/ttyUSB1"\nidentity = "1ESY42"\n')
    [device] = load_config(tmp_path / "o.toml").devices
    assert (device.protocol, device.identity) == ("d0", "1ESY42")
