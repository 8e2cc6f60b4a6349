"""The delivery endpoint against a real deployment: every kind of bad input is refused with a
reason naming the problem, and the valid readings of the same delivery are archived."""
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from node_harness import deploy_settlement, dev_key, wire

from node.api import create_app
from node.archive import open_archive
from node.chain import Chain
from node.peers import Peers
from node.settlement import SettlementNode

pytestmark = pytest.mark.chain
PERIOD = 60


@pytest.fixture
def api(anvil, tmp_path):
    now_period = int(time.time()) // PERIOD
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=10, n_operators=1, quorum=1, n_meters=3,
                            active_from=now_period - 5)
    archive = open_archive(f"sqlite:///{tmp_path / 'node.db'}")
    node = SettlementNode(Chain(dep.rpc_url, dep.registry, dep.ledger, dep.operator_keys[0]), archive, Peers(()),
                          grace_seconds=2.0)
    with TestClient(create_app(node)) as client:
        yield dep, client, archive
    archive.close()


def safe_now() -> int:
    """A timestamp at least 5 s inside the current period, so its period stays open meanwhile."""
    while time.time() % PERIOD < 5 or time.time() % PERIOD > PERIOD - 10:
        time.sleep(0.5)
    return int(time.time()) - 1


def reading(dep, i: int, ts: int, imp: int, period: int | None = None, key: bytes | None = None) -> dict:
    m = dep.meters[i]
    p = ts // PERIOD if period is None else period
    return wire(dep, [(m.meter_id, p, ts, imp, 10)], [key or m.key])[0]


def post(client, readings):
    return client.post("/v1/readings", json={"readings": readings})


def reasons(resp) -> dict[int, str]:
    return {r["index"]: r["reason"] for r in resp.json()["rejected"]}


def test_malformed_json_and_body_are_400(api):
    _, client, _ = api
    r = client.post("/v1/readings", content=b'{"readings": [', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
    r = client.post("/v1/readings", json={"reading": []})
    assert r.status_code == 400 and "readings" in r.json()["detail"]


def test_bad_readings_are_named_and_the_good_ones_kept(api):
    dep, client, archive = api
    ts = safe_now()
    good0 = reading(dep, 0, ts, 2_000_000)
    forged = reading(dep, 1, ts, 2_000_000, key=dev_key(9))
    unknown = dict(reading(dep, 2, ts, 2_000_000), meter_id="0x" + "ab" * 32)
    wrong_period = reading(dep, 2, ts, 2_000_000, period=ts // PERIOD + 1)
    future = reading(dep, 2, ts + 3600, 2_000_000)
    malformed = dict(good0, meter_id="0x1234")
    inexact = dict(reading(dep, 1, ts, 2_000_500), import_wh="2000.4")
    good1 = reading(dep, 2, ts, 2_000_000)
    r = post(client, [good0, forged, unknown, wrong_period, future, malformed, inexact, good1])
    assert r.status_code == 422
    body = r.json()
    assert body["accepted"] == [0, 7] and body["duplicates"] == []
    why = reasons(r)
    assert why[1].startswith("bad signature") and "registered key" in why[1]
    assert why[2].startswith("unknown meter 0x" + "ab" * 32)
    assert why[3].startswith("wrong period") and f"not {ts // PERIOD + 1}" in why[3]
    assert why[4].startswith("wrong period") and "future" in why[4]
    assert why[5].startswith("malformed reading: meter_id")
    assert why[6].startswith("malformed reading: import_wh")
    for entry in (good0, good1):
        assert archive.has_reading(bytes.fromhex(entry["meter_id"][2:]), ts, bytes.fromhex(entry["signature"][2:]))
    assert not archive.has_reading(dep.meters[1].meter_id, ts, bytes.fromhex(forged["signature"][2:]))


def test_duplicates_replays_late_and_regressions(api):
    dep, client, archive = api
    ts = safe_now()
    first = reading(dep, 0, ts, 3_000_000)
    assert post(client, [first]).json() == {"accepted": [0], "duplicates": [], "rejected": []}
    again = post(client, [first])
    assert again.status_code == 200 and again.json()["duplicates"] == [0]

    other_values = reading(dep, 0, ts, 3_000_001)  # validly signed, same meter and time
    backwards = reading(dep, 0, ts + 1, 2_999_000)
    old_ts = (ts // PERIOD - 3) * PERIOD + 5     # a period closed long ago
    late = reading(dep, 1, old_ts, 1_500_000)
    fresh = reading(dep, 1, ts, 2_500_000)
    r = post(client, [other_values, backwards, late, fresh])
    assert r.status_code == 422 and r.json()["accepted"] == [3]
    why = reasons(r)
    assert why[0].startswith("replay: meter already has a different reading")
    assert why[1].startswith("register regression")
    assert why[2].startswith("replay or late: period") and "closed" in why[2]
    metrics = client.get("/metrics").text
    assert 'node_readings_refused_total{reason="register regression"} 1.0' in metrics


def test_openapi_is_published(api):
    _, client, _ = api
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/readings" in paths and "/metrics" in paths
