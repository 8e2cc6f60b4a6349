"""Shared helpers of the oracle tests: testdata location, test keys, a settable clock."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from meter_oracle.keystore import Keyring, MeterKey
from meter_oracle.outbox import Outbox
from meter_oracle.pipeline import Pipeline
from meter_oracle.signing import Domain, RustCoreSigner

REPO = Path(__file__).resolve().parents[2]
TESTDATA = REPO / ".." / "shared" / "testdata"
DOMAIN = Domain.parse(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
ISKRA = "4B384547303034303436333935353037"
KAIFA = "3960221976967177082151037881335713"


def write_deployment(folder: Path, domain: Domain = DOMAIN, period_seconds: int = 900) -> Path:
    """The deployment file an oracle config points at (`deployment = "deployment.json"`)."""
    from rust_core.deployment import Deployment

    path = folder / "deployment.json"
    Deployment(chain_id=domain.chain_id, registry="0x" + "11" * 20, ledger="0x" + domain.verifying_contract.hex(),
               period_seconds=period_seconds, challenge_window_seconds=60, first_block=0).save(path)
    return path


def key_for(label: str) -> bytes:
    """A deterministic test key per meter label."""
    from eth_utils import keccak

    return keccak(text=f"test key {label}")


def load_expected(protocol: str) -> dict:
    return json.loads((TESTDATA / protocol / "expected.json").read_text())


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    yield box
    box.close()


def read_stream(server_cls, protocol: str, chunks: list[bytes], expect: int, **driver_options) -> list:
    """Serves the chunks once over server_cls (TcpFrameServer / PtyFrameServer) and reads them
    with the StreamDriver that reads hardware. Opens the stream first, then lets the server send
    (pyserial flushes a pty on open)."""
    import threading

    from meter_oracle.drivers import StreamDriver
    from meter_oracle.simulators.stream_server import replay

    server = server_cls(replay(chunks), interval_s=0.01, chunk=61)
    driver = StreamDriver(server.url, protocol, **driver_options)
    stop = threading.Event()
    out: list = []

    def consume() -> None:
        for item in driver.results(stop):
            out.append(item)
            if len(out) == expect:
                return

    reader = threading.Thread(target=consume)
    reader.start()
    try:
        assert driver.connected.wait(10), "driver did not open the stream"
        server.start()
        reader.join(timeout=20)
    finally:
        stop.set()
        reader.join(timeout=5)
        server.stop()
    assert len(out) == expect, f"stream gave {out}"
    return out


def make_pipeline(outbox: Outbox, labels: list[str], now: float, max_power_w: int = 20_000) -> tuple[Pipeline, Clock]:
    clock = Clock(now)
    keys = Keyring([MeterKey(label, key_for(label), max_power_w) for label in labels])
    return Pipeline(outbox, keys, RustCoreSigner(DOMAIN), clock=clock), clock
