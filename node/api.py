"""The node's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs): the oracle delivery
endpoint, the batch endpoints peers use, and /metrics in Prometheus format. The bodies are the
models of rust_core.wire."""
from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from rust_core.wire import (
    BatchHeaderModel, Delivery, DeliveryAnswer, LeafModel, LeavesAnswer, Problem, SignatureAnswer, parse_hex32,
)

from node.archive import BATCH_FINAL
from node.settlement import SettlementNode

DELIVERY_DOC = """Each entry is judged on its own: a refused entry never costs the others of the same
delivery. Every index of the body ends in exactly one of `accepted`, `duplicates` (already
archived, acknowledged too) or `rejected` (with a stable `code` and a `message`). The answer is 200
when nothing was rejected, 422 when something was; a body that is not `{"readings": [...]}` is 400."""


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse(Problem(detail=detail).model_dump(), status_code=status)


def _with_request_schemas(app: FastAPI) -> None:
    """The delivery body is read by hand (each entry validated on its own), so FastAPI does not
    see its model: put Delivery and what it references into the OpenAPI components."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema = Delivery.model_json_schema(ref_template="#/components/schemas/{model}")
            components = doc.setdefault("components", {}).setdefault("schemas", {})
            components.update(schema.pop("$defs", {}))
            components["Delivery"] = schema
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(node: SettlementNode) -> FastAPI:
    app = FastAPI(title="Settlement node", version="1", description=__doc__)
    _with_request_schemas(app)

    @app.post(
        "/v1/readings", summary="Deliver signed meter readings (oracle -> node)", description=DELIVERY_DOC,
        response_model=DeliveryAnswer,
        responses={200: {"description": "every entry accepted or a duplicate"},
                   422: {"model": DeliveryAnswer, "description": "some entries rejected, each with code and message"},
                   400: {"model": Problem, "description": 'not JSON, or not {"readings": [...]}'}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Delivery"}}}}},
    )
    async def deliver(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            return _problem(400, f"malformed JSON: {e}")
        if not isinstance(body, dict) or not isinstance(body.get("readings"), list):
            return _problem(400, 'body must be an object {"readings": [...]}')
        answer = await run_in_threadpool(node.ingestor.deliver, body["readings"])
        return JSONResponse(answer.model_dump(mode="json"), status_code=422 if answer.rejected else 200)

    @app.get("/v1/batches/{period}/{group_id}/signature", summary="This node's signed header (peers)",
             response_model=SignatureAnswer, responses={404: {"model": Problem}})
    def signature(period: int, group_id: str) -> SignatureAnswer | JSONResponse:
        g = parse_hex32(group_id)
        rec = node.archive.own_batch(period, g) if g else None
        if rec is None or rec.signature is None:
            return _problem(404, f"no batch built for period {period} group {group_id}")
        return SignatureAnswer(header=BatchHeaderModel.of(rec.header), signer="0x" + node.chain.address.hex(),
                               signature=rec.signature)

    @app.get("/v1/batches/{period}/{group_id}/leaves", summary="Leaves of a batch by root (peers, auditors)",
             response_model=LeavesAnswer, responses={404: {"model": Problem}})
    def leaves(period: int, group_id: str, root: str) -> LeavesAnswer | JSONResponse:
        g, r = parse_hex32(group_id), parse_hex32(root)
        rec = node.archive.batch(period, g, r) if g and r else None
        if rec is None:
            return _problem(404, f"no batch with root {root} for period {period}")
        return LeavesAnswer(header=BatchHeaderModel.of(rec.header), final=rec.status == BATCH_FINAL,
                            leaves=[LeafModel.of(x) for x in node.archive.leaves(period, g, r)])

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def health() -> dict:
        return {"node": node.name, "operator": "0x" + node.chain.address.hex()}

    return app
