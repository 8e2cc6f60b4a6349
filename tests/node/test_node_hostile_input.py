"""Hostile clients against a running node process: each hostile request is answered 4xx within
a generous bound while valid deliveries keep being accepted, and the node's /healthz latency
during the attack is logged (its timing is bench/node.py's hostile_request_max_s, not asserted
here). In-process: malformed entries with made-up periods leave no per-period state behind."""
from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from node_harness import NodeProcess, deploy_settlement, wire

from devnet.ports import free_port
from scripts._hostile import hostile_requests, send

pytestmark = pytest.mark.chain
log = logging.getLogger(__name__)

PERIOD = 60
BOUND_S = 10.0  # generous: the point is 4xx and no stall of tens of seconds


def test_hostile_requests_are_4xx_in_bounded_time_while_the_node_works(anvil, tmp_path):
    now_period = int(time.time()) // PERIOD
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=10, n_operators=1, quorum=1, n_meters=2,
                            active_from=now_period - 2)
    node = NodeProcess(tmp_path, "node0", dep, dep.operator_keys[0], free_port(), [], grace=2.0, takeover=1.0)
    node.start()
    stop = threading.Event()
    health_s: list[float] = []
    accepted: list[int] = []

    def probe_health() -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                t = time.perf_counter()
                c.get(node.url + "/healthz")
                health_s.append(time.perf_counter() - t)
                time.sleep(0.05)

    def ingest() -> None:  # the node's other work: valid readings keep coming
        m = dep.meters[1]
        imp = 2_000_000
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                ts = int(time.time())
                imp += 1000
                entry = wire(dep, [(m.meter_id, ts // PERIOD, ts, imp, 10)], [m.key])[0]
                r = c.post(node.url + "/v1/readings", json={"readings": [entry]})
                if r.status_code == 200:
                    accepted.append(ts)
                time.sleep(1.0)

    workers = [threading.Thread(target=probe_health), threading.Thread(target=ingest)]
    try:
        for w in workers:
            w.start()
        ts = int(time.time())
        good = wire(dep, [(dep.meters[0].meter_id, ts // PERIOD, ts, 2_000_000, 10)], [dep.meters[0].key])[0]
        group = "0x" + dep.meters[0].group_id.hex()
        with httpx.Client(timeout=60) as c:
            for name, target, kw in hostile_requests(good, group):
                t = time.perf_counter()
                r = send(c, node.url, target, kw)
                took = time.perf_counter() - t
                log.info("hostile %-22s -> %d in %.3f s", name, r.status_code, took)
                print(f"hostile {name}: {r.status_code} in {took:.3f} s: {r.text[:120]}")
                assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
                assert took < BOUND_S, (name, took)
                if target.startswith("POST") and r.status_code == 422:
                    assert r.json()["rejected"][0]["code"].startswith("malformed_"), (name, r.text[:300])
            r = c.post(node.url + "/v1/readings", json={"readings": [good]})  # the node still takes readings
            assert r.status_code == 200, r.text
        time.sleep(1.5)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
        node.stop()
    print(f"/healthz during the attack: {len(health_s)} probes, max {max(health_s):.3f} s, "
          f"median {sorted(health_s)[len(health_s) // 2]:.3f} s; {len(accepted)} valid deliveries accepted")
    assert accepted and health_s
    assert "Traceback" not in node.log.read_text()
