"""The hostile requests of issue 17, one list for the node tests and bench/node.py: oversized,
deeply nested and slow-to-parse deliveries and out-of-range path parameters. A node must answer
each with a 4xx quickly, whatever else it is doing."""
from __future__ import annotations

import json


def hostile_requests(good: dict, group: str) -> list[tuple[str, str, dict]]:
    """(name, "METHOD /path", httpx request keyword arguments), built around one valid delivery
    entry `good` and a balance group id `group` (0x hex)."""
    def delivery(**fields) -> dict:
        return {"json": {"readings": [dict(good, **fields)]}}

    deep = "[" * 200_000 + "]" * 200_000
    return [
        ("huge exponent", "POST /v1/readings", delivery(import_wh="1e999990")),
        ("huger exponent", "POST /v1/readings", delivery(import_wh="1e999999", export_wh="1E-999999")),
        ("long decimal", "POST /v1/readings", delivery(import_wh="1" * 5000)),
        ("nested body", "POST /v1/readings", {"content": '{"readings": ' + deep + "}",
                                              "headers": {"content-type": "application/json"}}),
        ("nested field", "POST /v1/readings", delivery(meter_id=json.loads("[" * 500 + "]" * 500))),
        ("big frame", "POST /v1/readings", delivery(raw_frame="QUFB" * 30_000)),
        ("7 MB body", "POST /v1/readings", delivery(raw_frame="QUFB" * 1_800_000)),
        ("chunked 7 MB body", "POST /v1/readings", {"content": lambda: (b"x" * 65536 for _ in range(110)),
                                                    "headers": {"content-type": "application/json"}}),
        ("too many entries", "POST /v1/readings", {"json": {"readings": [good] * 2500}}),
        ("period 2^63 signature", f"GET /v1/batches/{2**63}/{group}/signature", {}),
        ("period 2^70 leaves", f"GET /v1/batches/{2**70}/{group}/leaves", {"params": {"root": group}}),
        ("negative period", f"GET /v1/batches/-1/{group}/signature", {}),
        ("period 2^63 readings", f"GET /v1/readings/{2**63}/{group}", {}),
        ("long group id", f"GET /v1/readings/5/{'ab' * 5000}", {}),
        ("bad cursor", f"GET /v1/readings/5/{group}", {"params": {"after": "0x00:99999999999999999999:0x"}}),
    ]


def send(client, base_url: str, target: str, kwargs: dict):
    """Sends one hostile request (a generator body is made fresh each time)."""
    method, path = target.split(" ", 1)
    kw = dict(kwargs)
    if callable(kw.get("content")):
        kw["content"] = kw["content"]()
    return client.request(method, base_url + path, **kw)
