"""The node's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs): the oracle delivery
endpoint, the readings and batch endpoints peers use, /healthz and /metrics in Prometheus format.
The bodies are the models of rust_core.wire.

Every request costs bounded work before it is refused: a delivery body is read up to
max_body_bytes only (413 beyond), at most max_entries entries, nesting deeper than JSON's
recursion limit is a 400, each field is size-checked on its text before it is decoded (see
rust_core.wire), and path parameters out of the archive's range are 422: 4xx, never 5xx."""
from __future__ import annotations

import dataclasses
import json
from typing import Annotated

from fastapi import FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from node.archive import ARCHIVE_MAX, BATCH_FINAL
from node.peers import READINGS_PAGE_MAX
from node.settlement import SettlementNode
from rust_core.wire import (
    BatchHeaderModel,
    Delivery,
    DeliveryAnswer,
    LeafModel,
    LeavesAnswer,
    Problem,
    ReadingsDigest,
    ReadingsPage,
    RefusalCode,
    SignatureAnswer,
    parse_hex32,
)

# Delivery limits, the defaults of the node config's max_body_bytes and max_delivery_readings:
# the oracle sends 200 readings of a few kB at most per request.
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_ENTRIES = 2000

Period = Annotated[int, Path(ge=0, le=ARCHIVE_MAX, description="period number")]
GroupId = Annotated[str, Path(max_length=66, description="balance group id, 0x and 64 hex digits")]

DELIVERY_DOC = """Each entry is judged on its own: a refused entry never costs the others of the same
delivery. Every index of the body ends in exactly one of `accepted`, `duplicates` (already
archived, acknowledged too) or `rejected` (with a stable `code` and a `message`). The answer is 200
when nothing was rejected, 422 when something was; a body that is not `{"readings": [...]}` is
400, one over the node's body or entry limit 413, and 503 (code `node_not_ready`,
retry later) while the node cannot reach its chain or the deployment is gone.

The meter signs the reading, not `raw_frame` and `protocol`: those are unauthenticated evidence.
The node keeps every distinct frame delivered with a signed reading, each with its SHA-256."""


def _problem(status: int, detail: str, code: RefusalCode | None = None) -> JSONResponse:
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(Problem(detail=detail, code=code).model_dump(mode="json"), status_code=status,
                        headers=headers)


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds `limit` bytes (never read in full)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


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


def _cursor(text: str) -> tuple[bytes, int, bytes] | None:
    parts = text.split(":")
    if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) > ARCHIVE_MAX:
        return None
    m = parse_hex32(parts[0])
    try:
        sig = bytes.fromhex(parts[2].removeprefix("0x"))
    except ValueError:
        return None
    return (m, int(parts[1]), sig) if m is not None and len(sig) == 65 else None


def create_app(node: SettlementNode, *, max_body_bytes: int = MAX_BODY_BYTES, max_entries: int = MAX_ENTRIES) -> FastAPI:
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
        not_ready = node.health_check.not_ready
        if not_ready:
            return _problem(503, f"node not ready: {not_ready}", RefusalCode.NODE_NOT_READY)
        raw = await _bounded_body(request, max_body_bytes)
        if raw is None:
            return _problem(413, f"body exceeds {max_body_bytes} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            return _problem(400, f"malformed JSON: {str(e)[:200]}")
        except RecursionError:
            return _problem(400, "malformed JSON: nested too deeply")
        if not isinstance(body, dict) or not isinstance(body.get("readings"), list):
            return _problem(400, 'body must be an object {"readings": [...]}')
        if len(body["readings"]) > max_entries:
            return _problem(413, f"{len(body['readings'])} readings exceed {max_entries} per delivery")
        answer = await run_in_threadpool(node.ingestor.deliver, body["readings"])
        return JSONResponse(answer.model_dump(mode="json"), status_code=422 if answer.rejected else 200)

    @app.get("/v1/batches/{period}/{group_id}/signature", summary="This node's signed header (peers)",
             response_model=SignatureAnswer, responses={404: {"model": Problem}, 409: {"model": Problem}})
    def signature(period: Period, group_id: GroupId, epoch: Annotated[int | None, Query(ge=0, lt=2**32)] = None
                  ) -> SignatureAnswer | JSONResponse:
        """The header of this node's batch under the operator epoch in force, signed by this node
        (a header counts only in the epoch it names). An `epoch` other than the one in force is
        refused: a signature for an epoch to come would bind to an operator set nobody knows yet."""
        current = node.chain.operator_set().epoch
        if epoch is not None and epoch != current:
            return _problem(409, f"epoch {epoch} is not the operator epoch in force ({current}); this node signs "
                                 "only under the epoch in force")
        g = parse_hex32(group_id)
        signed = node.signed_header(period, g, current) if g else None
        if signed is None:
            return _problem(404, f"no batch built for period {period} group {group_id}")
        header, sig = signed
        return SignatureAnswer(header=BatchHeaderModel.of(header), signer="0x" + node.chain.address.hex(),
                               signature=sig)

    @app.get("/v1/batches/{period}/{group_id}/leaves", summary="Leaves of a batch by root (peers, auditors)",
             response_model=LeavesAnswer, responses={404: {"model": Problem}})
    def leaves(period: Period, group_id: GroupId, root: Annotated[str, Query(max_length=66)]
               ) -> LeavesAnswer | JSONResponse:
        g, r = parse_hex32(group_id), parse_hex32(root)
        rec = node.archive.batch(period, g, r) if g and r else None
        if rec is None:
            return _problem(404, f"no batch with root {root} for period {period}")
        return LeavesAnswer(root=rec.root, final=rec.status == BATCH_FINAL,
                            leaves=[LeafModel.of(x) for x in node.archive.leaves(period, g, r)])

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/readings/{period}/{group_id}", summary="Signed readings of a period (peers reconcile)",
             response_model=ReadingsPage, responses={404: {"model": Problem}})
    def readings(period: Period, group_id: GroupId,
                 after: Annotated[str | None, Query(max_length=220, description="next_after of the previous page")] = None,
                 limit: Annotated[int, Query(ge=1, le=READINGS_PAGE_MAX)] = READINGS_PAGE_MAX,
                 ) -> ReadingsPage | JSONResponse:
        g = parse_hex32(group_id)
        if g is None:
            return _problem(404, f"no group {group_id}")
        cursor = _cursor(after) if after else None
        if after and cursor is None:
            return _problem(400, f"bad cursor {after!r}")
        page = node.archive.readings_page(period, g, cursor, limit)
        last = page[-1] if len(page) == limit else None
        return ReadingsPage(readings=page, next_after=None if last is None else
                            f"0x{last.meter_id.hex()}:{last.timestamp}:0x{last.signature.hex()}")

    @app.get("/v1/readings/{period}/{group_id}/digest", summary="One hash over a period's signed readings "
             "(peers skip reconciling when theirs is the same)", response_model=ReadingsDigest,
             responses={404: {"model": Problem}})
    def readings_digest(period: Period, group_id: GroupId) -> ReadingsDigest | JSONResponse:
        g = parse_hex32(group_id)
        if g is None:
            return _problem(404, f"no group {group_id}")
        count, digest = node.archive.readings_digest(period, g)
        return ReadingsDigest(count=count, digest=digest)

    @app.get("/healthz", summary="Health: 200 ok, 503 degraded with the reasons (load balancers)")
    def health() -> JSONResponse:
        h = node.health()
        body = {"status": "ok" if h.ok else "degraded", "node": node.name,
                "operator": "0x" + node.chain.address.hex(), **dataclasses.asdict(h)}
        return JSONResponse(body, status_code=200 if h.ok else 503)

    return app
