"""Delivery of the outbox to one settlement node (POST /v1/readings), with retry and back-off.

A reading is marked delivered to the node only on its acknowledgement (accepted or duplicate),
refused (kept, with the node's code and message, never retried) when the node rejects it with a
final code, and stays pending on a retryable code (`RefusalCode.retryable`: a timestamp ahead of
the node's clock, a node not ready), on 5xx (503 node_not_ready after a chain reset), on
connection errors and on any answer that is not the protocol's body (DeliveryAnswer); while
nothing goes through, the delivery backs off. A 413 halves the batch; a single reading too large
for the node is refused with the node's reason.

Every answer's HTTP Date tells the oracle its clock against the node's (`NodeClocks`): when it is
off against every node that answered lately, the pipeline refuses to sign (ClockSkew, logged
and kept with the raw frame) rather than sign readings the nodes would refuse or settle late.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx
import pydantic

from meter_oracle.errors import ClockSkew
from meter_oracle.outbox import Outbox
from rust_core.wire import Delivery, DeliveryAnswer, Refusal

log = logging.getLogger("meter_oracle.delivery")


# Below the node's default allowance for future timestamps (clock_skew_seconds = 30), and far
# above the 1 s resolution of the HTTP Date header (oracle config setting once it is a model).
MAX_NODE_CLOCK_OFFSET_S = 20.0
NODE_CLOCK_FRESH_S = 300.0   # an offset older than this no longer counts


class DeliveryError(Exception):
    """The node did not acknowledge; everything sent stays pending."""


class NodeClocks:
    """The oracle's clock against each node's (from the Date header of its answers), shared by
    the delivery threads and the signing pipeline."""

    def __init__(self, max_offset_s: float = MAX_NODE_CLOCK_OFFSET_S, fresh_s: float = NODE_CLOCK_FRESH_S) -> None:
        self.max_offset_s, self.fresh_s = max_offset_s, fresh_s
        self._lock = threading.Lock()
        self._offsets: dict[str, tuple[float, float]] = {}  # node -> (oracle minus node, when seen)

    def observe(self, node: str, date_header: str | None, now: float) -> None:
        try:
            node_time = parsedate_to_datetime(date_header).timestamp() if date_header else None
        except (TypeError, ValueError):
            node_time = None
        if node_time is not None:
            with self._lock:
                self._offsets[node] = (now - node_time, now)

    def offsets(self, now: float) -> dict[str, float]:
        with self._lock:
            return {n: off for n, (off, at) in self._offsets.items() if now - at <= self.fresh_s}

    def check(self, now: float) -> None:
        """Raises ClockSkew when the oracle's clock is off against every node that answered lately
        (one node's wrong clock does not stop the oracle)."""
        fresh = self.offsets(now)
        if fresh and all(abs(off) > self.max_offset_s + 1 for off in fresh.values()):
            raise ClockSkew("oracle clock off against the settlement nodes, not signing: " + ", ".join(
                f"{n} {off:+.0f} s" for n, off in sorted(fresh.items())) + f" (limit {self.max_offset_s:g} s); "
                "fix the oracle's time (NTP)")


class Backoff:
    def __init__(self, first_s: float = 0.5, max_s: float = 60.0) -> None:
        self.first_s, self.max_s = first_s, max_s
        self.delay = 0.0

    def failed(self) -> float:
        self.delay = min(self.max_s, self.delay * 2 if self.delay else self.first_s)
        return self.delay

    def succeeded(self) -> None:
        self.delay = 0.0


class NodeDelivery:
    def __init__(self, name: str, url: str, outbox: Outbox, *, batch_size: int = 200, timeout_s: float = 10.0,
                 backoff: Backoff | None = None, clocks: NodeClocks | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.endpoint = url.rstrip("/") + "/v1/readings"
        self.outbox = outbox
        self.batch_size = self.max_batch_size = batch_size
        self.backoff = backoff or Backoff()
        self.clocks = clocks if clocks is not None else NodeClocks()
        self.clock = clock
        self._client = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def deliver_once(self) -> int:
        """Sends one batch of pending readings; returns how many were sent (0: nothing pending).
        Raises DeliveryError when the node did not acknowledge."""
        batch = self.outbox.pending(self.name, self.batch_size)
        if not batch:
            return 0
        ids = [rid for rid, _ in batch]
        body = Delivery(readings=[r for _, r in batch]).model_dump(mode="json")
        try:
            resp = self._client.post(self.endpoint, json=body)
        except httpx.HTTPError as e:
            self.outbox.mark(self.name, [], {}, ids)
            raise DeliveryError(f"node {self.name} unreachable: {type(e).__name__}: {e}") from None
        self.clocks.observe(self.name, resp.headers.get("date"), self.clock())
        if resp.status_code == 413:
            if len(ids) == 1:  # this one reading is more than the node takes: it never will
                self.outbox.mark(self.name, [], {ids[0]: f"too_large: {resp.text[:200]}"}, ids)
                return 1
            self.batch_size = max(1, len(ids) // 2)
            self.outbox.mark(self.name, [], {}, ids)
            raise DeliveryError(f"node {self.name} answered 413 for {len(ids)} readings; sending "
                                f"{self.batch_size} at a time")
        if resp.status_code not in (200, 422):
            self.outbox.mark(self.name, [], {}, ids)
            raise DeliveryError(f"node {self.name} answered {resp.status_code}: {resp.text[:200]}")
        self.batch_size = min(self.max_batch_size, self.batch_size * 2)
        delivered, rejected = _outcome(resp, len(ids), self.name)
        final = {i: f"{x.code.value}: {x.message}" for i, x in rejected.items() if not x.code.retryable}
        self.outbox.mark(self.name, [ids[i] for i in delivered], {ids[i]: why for i, why in final.items()}, ids)
        for i, x in rejected.items():
            log.warning("node %s %s reading %d: %s: %s", self.name,
                        "deferred" if x.code.retryable else "refused", ids[i], x.code.value, x.message)
        if not delivered and not final:
            raise DeliveryError(f"node {self.name} deferred all {len(ids)} readings (retryable refusals)")
        return len(ids)

    def run(self, stop: threading.Event, idle_s: float = 0.5) -> None:
        """Delivers until stop is set: back-off after a failure, a short wait when idle."""
        while not stop.is_set():
            try:
                sent = self.deliver_once()
            except DeliveryError as e:
                delay = self.backoff.failed()
                log.warning("%s; retrying in %.1f s", e, delay)
                stop.wait(delay)
                continue
            self.backoff.succeeded()
            if not sent:
                stop.wait(idle_s)


def _outcome(resp: httpx.Response, n: int, node: str) -> tuple[list[int], dict[int, Refusal]]:
    """(acknowledged indices, {rejected index: refusal}) from a 200/422 body; DeliveryError if the
    body does not account for the batch as the protocol says."""
    try:
        answer = DeliveryAnswer.model_validate_json(resp.content)
    except pydantic.ValidationError as e:
        raise DeliveryError(f"node {node} answered {resp.status_code} with an unreadable body: "
                            f"{e.error_count()} problem(s), first: {e.errors(include_url=False)[0]['msg']}") from None
    acked = [*answer.accepted, *answer.duplicates]
    rejected = {x.index: x for x in answer.rejected}
    if any(not 0 <= i < n for i in [*acked, *rejected]):
        raise DeliveryError(f"node {node} answered with indices outside the batch of {n}")
    if resp.status_code == 422 and not rejected:
        raise DeliveryError(f"node {node} answered 422 without naming a rejected reading")
    return acked, rejected
