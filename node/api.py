"""The node's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs): the oracle delivery
endpoint, the batch endpoints peers use, and /metrics in Prometheus format."""
from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from node.archive import BATCH_FINAL
from node.peers import header_json, leaf_json
from node.settlement import SettlementNode


def _group(text: str) -> bytes | None:
    try:
        g = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        return None
    return g if len(g) == 32 else None


def create_app(node: SettlementNode) -> FastAPI:
    app = FastAPI(title="Settlement node", version="1", description=__doc__)

    @app.post("/v1/readings", summary="Deliver signed meter readings (oracle -> node)")
    async def deliver(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            return JSONResponse({"detail": f"malformed JSON: {e}"}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("readings"), list):
            return JSONResponse({"detail": 'body must be an object {"readings": [...]}'}, status_code=400)
        result = await run_in_threadpool(node.ingestor.deliver, body["readings"])
        payload = {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": result.rejected}
        return JSONResponse(payload, status_code=422 if result.rejected else 200)

    @app.get("/v1/batches/{period}/{group_id}/signature", summary="This node's signed header (peers)")
    def signature(period: int, group_id: str) -> JSONResponse:
        g = _group(group_id)
        rec = node.archive.own_batch(period, g) if g else None
        if rec is None:
            return JSONResponse({"detail": f"no batch built for period {period} group {group_id}"}, status_code=404)
        return JSONResponse({"header": header_json(rec.header), "signer": "0x" + node.chain.address.hex(),
                             "signature": "0x" + rec.signature.hex()})

    @app.get("/v1/batches/{period}/{group_id}/leaves", summary="Leaves of a batch by root (peers, auditors)")
    def leaves(period: int, group_id: str, root: str) -> JSONResponse:
        g, r = _group(group_id), _group(root)
        rec = node.archive.batch(period, g, r) if g and r else None
        if rec is None:
            return JSONResponse({"detail": f"no batch with root {root} for period {period}"}, status_code=404)
        return JSONResponse({"header": header_json(rec.header), "final": rec.status == BATCH_FINAL,
                             "leaves": [leaf_json(x) for x in node.archive.leaves(period, g, r)]})

    @app.get("/metrics", summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def health() -> dict:
        return {"node": node.name, "operator": "0x" + node.chain.address.hex()}

    return app
