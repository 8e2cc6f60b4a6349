"""Meter oracle throughput: frames parsed, and frames parsed + checked + signed + stored in the
durable outbox (SQLite WAL, synchronous=FULL), per second per protocol (DSMR, DSMR encrypted
(DLMS AES-GCM decryption included), SML, D0); SunSpec reads over Modbus TCP from the simulator;
reading signatures with rust_core against the eth-account baseline (coincurve backend).
--quick: tiny sizes, the same JSON keys. Prints one JSON object on its last line."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

# Run as a script, this folder is sys.path[0], where bench/node.py would shadow the node package:
# the repository root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_keys.backends import get_backend  # noqa: E402
from eth_utils import keccak

from meter_oracle.drivers import FrameDecoder  # noqa: E402
from meter_oracle.keystore import Keyring, MeterKey  # noqa: E402
from meter_oracle.outbox import Outbox  # noqa: E402
from meter_oracle.pipeline import Pipeline  # noqa: E402
from meter_oracle.signing import Domain, EthAccountSigner, RustCoreSigner  # noqa: E402
from meter_oracle.simulators.d0_meter import build_readout  # noqa: E402
from meter_oracle.simulators.dsmr_telegram import build_telegram  # noqa: E402
from meter_oracle.simulators.p1_cipher_frame import encrypt_telegram  # noqa: E402
from meter_oracle.simulators.profiles import FixedRegisters  # noqa: E402
from meter_oracle.simulators.sml_frame import build_frame  # noqa: E402
from meter_oracle.simulators.sunspec_device import SunSpecServer  # noqa: E402
from meter_oracle.sunspec import SunSpecDriver  # noqa: E402
from rust_core.wire import Reading  # noqa: E402

DOMAIN = Domain.parse(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
T0 = 1_700_000_000.0
N = 2000
SUNSPEC_READS = 300
SIGNATURES = 2000
SML_ID = bytes.fromhex("0a01424e430000000001")
KEY = bytes(range(16))
PROTOCOLS = ("dsmr", "dsmr_encrypted", "sml", "d0")
LABELS = {"dsmr": "dsmr:BENCH01", "dsmr_encrypted": "dsmr:BENCH01", "sml": f"sml:{SML_ID.hex()}", "d0": "d0:BENCH01"}


def decoder(protocol: str) -> FrameDecoder:
    if protocol == "dsmr_encrypted":
        return FrameDecoder("dsmr", decryption_key=KEY)
    return FrameDecoder(protocol)


class Clock:
    now = T0

    def __call__(self) -> float:
        return self.now


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def stream(protocol: str) -> tuple[bytes, list[float]]:
    times = [T0 + 60 * i for i in range(N)]
    if protocol == "dsmr":
        frames = [build_telegram("BENCH01", Decimal(1000 + i), Decimal(i), t) for i, t in enumerate(times)]
    elif protocol == "dsmr_encrypted":
        frames = [encrypt_telegram(build_telegram("BENCH01", Decimal(1000 + i), Decimal(i), t, version="luxembourg"),
                                   KEY, invocation_counter=i + 1) for i, t in enumerate(times)]
    elif protocol == "d0":
        frames = [b"".join(build_readout("BENCH01", Decimal(1000 + i), Decimal(i))) for i in range(N)]
    else:
        frames = [build_frame(SML_ID, Decimal(1000 + i), Decimal(i)) for i in range(N)]
    return b"".join(frames), times


def parse_only(protocol: str, data: bytes) -> float:
    start = time.perf_counter()
    frames = decoder(protocol)
    results = []
    for i in range(0, len(data), 1024):  # as a port delivers it, in pieces
        results += frames.feed(data[i : i + 1024])
    seconds = time.perf_counter() - start
    assert len(results) == N and all(not hasattr(r, "reason") for r in results)
    return rate(N, seconds)


def full_pipeline(protocol: str, data: bytes, times: list[float], tmp: Path) -> float:
    label = LABELS[protocol]
    outbox = Outbox(tmp / f"{protocol}.sqlite")
    outbox.set_nodes(["op1", "op2", "op3"])
    clock = Clock()
    pipeline = Pipeline(outbox, Keyring([MeterKey(label, keccak(text=label), 50_000)]), RustCoreSigner(DOMAIN),
                        clock=clock)
    frames = decoder(protocol)
    n = 0
    start = time.perf_counter()
    for i in range(0, len(data), 1024):
        for item in frames.feed(data[i : i + 1024]):
            clock.now = times[n]
            n += 1
            assert pipeline.process("bench", protocol.split("_")[0], n, item) is not None
    seconds = time.perf_counter() - start
    assert outbox.reading_count() == N
    outbox.close()
    return rate(N, seconds)


def sunspec(tmp: Path) -> tuple[float, float]:
    reads = SUNSPEC_READS
    with SunSpecServer(FixedRegisters("123456.7", "89.1"), manufacturer="BenchCo", serial="S1", wh_scale=-1) as server:
        driver = SunSpecDriver(server.url)
        driver.read()  # connect and discover the model layout
        start = time.perf_counter()
        for _ in range(reads):
            driver.read()
        read_rate = rate(reads, time.perf_counter() - start)
        outbox = Outbox(tmp / "sunspec.sqlite")
        clock = Clock()
        label = "sunspec:BenchCo:S1"
        pipeline = Pipeline(outbox, Keyring([MeterKey(label, keccak(text=label), 50_000)]), RustCoreSigner(DOMAIN),
                            clock=clock)
        start = time.perf_counter()
        for i in range(reads):
            clock.now = T0 + 60 * i
            assert pipeline.process("bench", "sunspec", i, driver.read()) is not None
        full_rate = rate(reads, time.perf_counter() - start)
        outbox.close()
        driver.close()
    return read_rate, full_rate


def signing() -> dict:
    readings = [Reading(keccak(text=f"m{i}"), 1888889, 1700000100 + i, 6_825_000 + i, 2_444_000) for i in range(SIGNATURES)]
    keys = [keccak(text=f"k{i % 50}") for i in range(len(readings))]
    core, eth = RustCoreSigner(DOMAIN), EthAccountSigner(DOMAIN)
    start = time.perf_counter()
    one_by_one = [core.sign(r, k) for r, k in zip(readings, keys)]
    core_rate = rate(len(readings), time.perf_counter() - start)
    start = time.perf_counter()
    batch = core.sign_many(readings, keys)
    batch_rate = rate(len(readings), time.perf_counter() - start)
    sample = min(300, SIGNATURES)
    start = time.perf_counter()
    baseline = eth.sign_many(readings[:sample], keys[:sample])
    eth_rate = rate(sample, time.perf_counter() - start)
    assert batch == one_by_one and baseline == one_by_one[:sample]
    return {
        "sign_rust_core_per_s": core_rate,
        "sign_rust_core_batch_per_s": batch_rate,
        "sign_eth_account_per_s": eth_rate,
        "eth_account_backend": type(get_backend()).__name__,
    }


def main() -> None:
    global N, SUNSPEC_READS, SIGNATURES
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a few seconds), the same JSON keys")
    quick = parser.parse_args().quick
    if quick:
        N, SUNSPEC_READS, SIGNATURES = 50, 20, 50
    out: dict = {"quick": quick, "frames": N}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for protocol in PROTOCOLS:
            data, times = stream(protocol)
            out[f"{protocol}_parse_only_per_s"] = parse_only(protocol, data)
            out[f"{protocol}_frames_per_s"] = full_pipeline(protocol, data, times, tmp)
        out["sunspec_reads_only_per_s"], out["sunspec_reads_per_s"] = sunspec(tmp)
    out.update(signing())
    out["note"] = ("*_frames_per_s / sunspec_reads_per_s: parse + check + sign (rust_core) + outbox commit "
                   "(fsync) with 3 nodes; dsmr_encrypted_*: AES-GCM decryption (dlms-cosem) included; baselines in "
                   "the same run: *_parse_only_per_s, sunspec_reads_only_per_s, sign_eth_account_per_s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
