"""The delivery endpoint against a real deployment: every kind of bad input is refused with a
stable code and a message naming the problem, and the valid readings of the same delivery are
archived; the OpenAPI document describes the protocol; metrics are namespaced with bounded labels."""
from __future__ import annotations

import hashlib
import time

import pytest
from fastapi.testclient import TestClient
from node_harness import deploy_settlement, dev_key, wire

from node.api import create_app
from node.archive import open_archive
from node.chain import Chain
from node.peers import Peers
from node.settlement import SettlementNode
from rust_core.wire import DeliveryAnswer, Problem, ReadingsDigest, RefusalCode

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
        client.app_node = node
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


def refusals(resp) -> dict[int, tuple[str, str]]:
    """{index: (code, message)} of the rejected entries, the body checked against the schema."""
    answer = DeliveryAnswer.model_validate(resp.json())
    return {r.index: (r.code.value, r.message) for r in answer.rejected}


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
    why = refusals(r)
    assert why[1][0] == "bad_signature" and "registered key" in why[1][1]
    assert why[2] == ("unknown_meter", f"meter 0x{'ab' * 32} is not registered")
    assert why[3][0] == "wrong_period" and f"not {ts // PERIOD + 1}" in why[3][1]
    assert why[4][0] == "future_timestamp" and "future" in why[4][1]
    assert why[5] == ("malformed_meter_id", "meter_id: expected 0x followed by 64 hex digits")
    assert why[6][0] == "malformed_register" and why[6][1].startswith("import_wh: 2000.4 Wh does not round down")
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

    other_values = reading(dep, 0, ts, 3_000_001)  # validly signed, same meter and time: an equivocation
    backwards = reading(dep, 0, ts + 1, 2_999_000)  # below an unsettled reading: kept, the batch rule decides
    old_ts = (ts // PERIOD - 3) * PERIOD + 5     # a period closed long ago
    late = reading(dep, 1, old_ts, 1_500_000)
    fresh = reading(dep, 1, ts, 2_500_000)
    r = post(client, [other_values, backwards, late, fresh])
    assert r.status_code == 422 and r.json()["accepted"] == [1, 3]
    why = refusals(r)
    assert why[0][0] == "conflicting_reading" and "equivocation evidence" in why[0][1]
    assert why[2][0] == "period_closed" and "closed" in why[2][1]
    metrics = client.get("/metrics").text
    assert 'energy_settlement_node_readings_refused_total{code="conflicting_reading"} 1.0' in metrics
    kinds = sorted(e.kind for e in archive.equivocations())
    assert kinds == ["regression", "regression", "same_timestamp"]  # both ts readings above the later one


def test_each_malformed_field_family_has_its_code_and_the_rest_is_kept(api):
    dep, client, archive = api
    ts = safe_now()
    good = reading(dep, 0, ts, 2_000_000)
    bad = [
        ("malformed_entry", ["not", "an", "object"]),
        ("malformed_meter_id", dict(good, meter_id=7)),
        ("malformed_time", dict(good, period=str(good["period"]))),
        ("malformed_time", dict(good, timestamp=2**63)),          # beyond the archive's signed 64 bits
        ("malformed_register", dict(good, export_mwh=-1)),
        ("malformed_register", {k: v for k, v in good.items() if k != "import_wh"}),
        ("malformed_signature", dict(good, signature=good["signature"][:-2])),
        ("malformed_raw_frame", dict(good, raw_frame="not base64!")),
        ("malformed_protocol", dict(good, protocol="iec62056")),
    ]
    r = post(client, [entry for _, entry in bad] + [good])
    assert r.status_code == 422 and r.json()["accepted"] == [len(bad)]
    why = refusals(r)
    assert [why[i][0] for i in range(len(bad))] == [code for code, _ in bad]
    assert why[3][1] == f"timestamp: {2**63} exceeds {2**63 - 1}" and why[5][1] == "import_wh: missing"
    assert archive.has_reading(dep.meters[0].meter_id, ts, bytes.fromhex(good["signature"][2:]))


def test_openapi_documents_the_delivery_protocol_and_the_peer_endpoints(api):
    _, client, _ = api
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]

    def resolve(schema: dict) -> dict:
        return schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema

    post_ = doc["paths"]["/v1/readings"]["post"]
    body = resolve(post_["requestBody"]["content"]["application/json"]["schema"])
    entry = resolve(body["properties"]["readings"]["items"])
    assert set(entry["required"]) == {"meter_id", "period", "timestamp", "import_mwh", "export_mwh", "signature",
                                      "import_wh", "export_wh", "raw_frame", "protocol"}
    assert entry["properties"]["meter_id"]["pattern"] == "^0x[0-9a-fA-F]{64}$"
    assert entry["properties"]["import_mwh"]["maximum"] == 2**64 - 1
    for status, model in (("200", "DeliveryAnswer"), ("422", "DeliveryAnswer"), ("400", "Problem")):
        answer = post_["responses"][status]
        assert answer["description"] and answer["content"]["application/json"]["schema"]["$ref"].endswith(model)
    rejected = resolve(resolve(schemas["DeliveryAnswer"]["properties"]["rejected"]["items"])["properties"]["code"])
    assert set(rejected["enum"]) == {c.value for c in RefusalCode}
    for path, model in (("/v1/batches/{period}/{group_id}/signature", "SignatureAnswer"),
                        ("/v1/batches/{period}/{group_id}/leaves", "LeavesAnswer")):
        responses = doc["paths"][path]["get"]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(model)
        assert responses["404"]["content"]["application/json"]["schema"]["$ref"].endswith("Problem")
    assert "/metrics" in doc["paths"]


def test_metrics_are_namespaced_and_a_refusal_storm_adds_no_series(api):
    dep, client, _ = api
    ts = safe_now()
    before = client.get("/metrics").text
    storm = [dict(reading(dep, 0, ts, 2_000_000), meter_id="0x" + f"{i:064x}") for i in range(1, 201)]
    r = post(client, storm)
    assert r.status_code == 422 and {c for c, _ in refusals(r).values()} == {"unknown_meter"}
    text = client.get("/metrics").text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples and all(line.startswith("energy_settlement_node_") for line in samples)
    refused = [line for line in samples if line.startswith("energy_settlement_node_readings_refused_total")]
    assert len(refused) == len(RefusalCode) == len(
        [line for line in before.splitlines() if line.startswith("energy_settlement_node_readings_refused_total")])
    assert 'energy_settlement_node_readings_refused_total{code="unknown_meter"} 200.0' in refused
    assert f"{1:064x}" not in text and "is not registered" not in text


def test_peer_endpoints_answer_a_problem_for_a_batch_they_do_not_have(api):
    _, client, _ = api
    for path in ("/v1/batches/5/0x" + "ab" * 32 + "/signature", "/v1/batches/5/0x12/signature",
                 "/v1/batches/5/0x" + "ab" * 32 + "/leaves?root=0x" + "cd" * 32):
        r = client.get(path)
        assert r.status_code == 404 and Problem.model_validate(r.json()).detail.startswith("no batch")


def test_made_up_periods_leave_no_per_period_state(api):
    dep, client, _ = api
    node = client.app_node  # set by the fixture
    ts = safe_now()
    good = reading(dep, 0, ts, 2_000_000)
    made_up = [dict(good, period=p, import_wh="x") for p in range(10**6, 10**6 + 500)]
    made_up += [dict(good, period=p) for p in range(10**9, 10**9 + 500)]  # well-formed, wrong period
    r = post(client, made_up + [good])
    assert r.status_code == 422 and r.json()["accepted"] == [1000]
    assert set(node.ingestor.period_stats) == {ts // PERIOD}


def test_a_peer_whose_readings_digest_equals_ours_is_not_paged(api):
    dep, client, archive = api
    ts = safe_now()
    sent = [reading(dep, i, ts, 5_000_000 + i) for i in range(3)]
    assert post(client, sent).status_code == 200
    p, group = ts // PERIOD, dep.meters[0].group_id
    keys = sorted((bytes.fromhex(r["meter_id"][2:]), r["timestamp"], bytes.fromhex(r["signature"][2:])) for r in sent)
    expected = hashlib.sha256(b"".join(m + t.to_bytes(8, "big") + s for m, t, s in keys)).digest()
    assert archive.readings_digest(p, group) == (3, expected)
    answer = ReadingsDigest.model_validate(client.get(f"/v1/readings/{p}/0x{group.hex()}/digest").json())
    assert (answer.count, answer.digest) == (3, expected)
    assert client.get(f"/v1/readings/{p}/0x{'ab' * 32}/digest").json()["count"] == 0  # a group it has nothing of

    peers = Peers(("http://testserver",))
    peers._client = client  # the node's app, over the TestClient transport
    paths: list[str] = []
    client.event_hooks["request"].append(lambda request: paths.append(request.url.path))
    assert peers.readings(p, group, own_digest=expected) == {"http://testserver": []}
    assert paths == [f"/v1/readings/{p}/0x{group.hex()}/digest"]  # no page asked for
    paths.clear()
    differing = peers.readings(p, group, own_digest=b"\x00" * 32)["http://testserver"]
    assert sorted((r.meter_id, r.timestamp, r.signature) for r in differing) == keys
    assert paths[-1] == f"/v1/readings/{p}/0x{group.hex()}"
