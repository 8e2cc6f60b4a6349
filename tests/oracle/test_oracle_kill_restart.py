"""The real `meter-oracle run` process, killed with SIGKILL while a delivery is in flight, then
restarted: no reading is lost, and only the readings whose acknowledgement never arrived are
sent again (the node answers them as duplicates)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from decimal import Decimal

from oracle_support import DOMAIN, REPO, key_for, write_deployment
from receiver import Receiver

from meter_oracle.outbox import Outbox
from meter_oracle.reading import meter_id
from meter_oracle.signing import RustCoreSigner, address_of
from meter_oracle.simulators.profiles import PlainLoad
from meter_oracle.simulators.stream_server import DsmrMeter, TcpFrameServer
from rust_core.keystore import write_keystore

METERS = ["KILL0001", "KILL0002", "KILL0003"]


def write_config(tmp_path, node_url: str, device_urls: list[str]) -> str:
    lines = [
        'outbox = "outbox.sqlite"',
        f'deployment = "{write_deployment(tmp_path).name}"',
        "[[nodes]]", 'name = "op1"', f'url = "{node_url}"',
    ]
    for meter, url in zip(METERS, device_urls):
        write_keystore(tmp_path / f"{meter}.json", key_for(f"dsmr:{meter}"), "pw", iterations=1000)
        (tmp_path / f"{meter}.pw").write_text("pw\n")
        lines += ["[[meters]]", f'meter = "dsmr:{meter}"', f'keystore = "{meter}.json"', f'password_file = "{meter}.pw"',
                  "[[devices]]", f'name = "p1-{meter}"', 'protocol = "dsmr"', f'url = "{url}"', "interval_s = 1"]
    path = tmp_path / "oracle.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def start_oracle(config: str, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "meter_oracle.cli", "run", "--config", config],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_mid_delivery_loses_nothing_and_resends_only_the_unacknowledged(tmp_path):
    """Delivery is at-least-once by design (an answer lost in transit cannot be told from a
    request lost); what must hold: every reading arrives, and only the batch in flight at the
    kill is sent twice."""
    t0 = time.time() - 3600
    sims = [TcpFrameServer(DsmrMeter(m, PlainLoad(t0)), interval_s=0.25).start() for m in METERS]
    procs: list[subprocess.Popen] = []
    log = open(tmp_path / "oracle.log", "w")
    try:
        with Receiver() as node:
            config = write_config(tmp_path, node.url, [s.url for s in sims])
            procs.append(start_oracle(config, log))
            wait_for(lambda: len(node.stored) >= 6, 60, "the first acknowledged readings")

            node.hold.set()  # the next POST is stored by the node but never answered
            wait_for(node.held.is_set, 30, "a delivery in flight")
            procs[0].send_signal(signal.SIGKILL)
            assert procs[0].wait(10) == -signal.SIGKILL
            with node.lock:
                in_flight = {(r["meter_id"], r["timestamp"]) for r in node.posts[-1]}
                answered = {(r["meter_id"], r["timestamp"]) for post in node.posts[:-1] for r in post}
            node.hold.clear()
            node.release.set()
            box = Outbox(tmp_path / "outbox.sqlite")
            before_restart = box.reading_count()
            assert in_flight and box.counts()["op1"]["pending"] >= len(in_flight)

            procs.append(start_oracle(config, log))
            wait_for(lambda: box.reading_count() >= before_restart + 6, 60, "readings after the restart")
            for sim in sims:
                sim.stop()  # no new readings; let the backlog drain
            wait_for(lambda: box.counts()["op1"].get("pending", 0) == 0, 60, "the backlog to drain")
            procs[1].send_signal(signal.SIGTERM)
            assert procs[1].wait(20) == 0

            rows = box._db.execute("SELECT meter_id, timestamp, period, import_mwh, export_mwh, signature FROM readings").fetchall()
            box.close()
            sent = node.sent_count()
            in_outbox = {("0x" + mid.hex(), ts) for mid, ts, *_ in rows}
            assert len(rows) >= before_restart + 6
            assert in_outbox == set(node.stored) == set(sent)  # none lost, none invented
            assert {k for k, n in sent.items() if n > 1} == in_flight  # only the unacknowledged, sent again
            assert all(sent[k] == 2 for k in in_flight) and not (answered & in_flight)
            signer = RustCoreSigner(DOMAIN)
            label = {meter_id("dsmr", m): f"dsmr:{m}" for m in METERS}
            for mid, ts, period, imp, exp, sig in rows:
                assert signer.recover((mid, period, ts, imp, exp), sig) == address_of(key_for(label[mid]))
                wire = node.stored[("0x" + mid.hex(), ts)]
                assert wire["import_mwh"] == imp and Decimal(wire["import_wh"]) * 1000 >= imp
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for sim in sims:
            sim.stop()
        log.close()
