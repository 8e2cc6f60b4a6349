"""Delivery of the outbox to one settlement node (POST /v1/readings), with retry and back-off.

A reading is marked delivered to the node only on its acknowledgement (accepted or duplicate),
refused (kept, with the node's code and message, never retried) when the node rejects it with a
final code, and stays pending on a retryable code (a timestamp ahead of the node's clock), on
5xx, on connection errors and on any answer that is not the protocol's body (DeliveryAnswer).
"""
from __future__ import annotations

import logging
import threading

import httpx
import pydantic
from rust_core.wire import Delivery, DeliveryAnswer, Refusal

from meter_oracle.outbox import Outbox

log = logging.getLogger("meter_oracle.delivery")


class DeliveryError(Exception):
    """The node did not acknowledge; everything sent stays pending."""


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
                 backoff: Backoff | None = None) -> None:
        self.name = name
        self.endpoint = url.rstrip("/") + "/v1/readings"
        self.outbox = outbox
        self.batch_size = batch_size
        self.backoff = backoff or Backoff()
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
        if resp.status_code not in (200, 422):
            self.outbox.mark(self.name, [], {}, ids)
            raise DeliveryError(f"node {self.name} answered {resp.status_code}: {resp.text[:200]}")
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
