"""Outbox -> settlement node over real HTTP: acknowledged readings are marked delivered,
rejected ones refused with the node's code and message (a retryable code keeps them pending),
and 5xx / a node that is down keep everything pending until it comes back."""
from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from oracle_support import make_pipeline
from meter_oracle.delivery import Backoff, DeliveryError, NodeDelivery
from meter_oracle.drivers import FrameDecoder
from meter_oracle.simulators.dsmr_telegram import build_telegram
from receiver import Receiver
from rust_core.wire import RefusalCode, SignedReading
from scripts._processes import free_port

T0 = 1_700_000_000.0
METERS = ["E001", "E002", "E003"]


def fill(outbox, readings_per_meter: int) -> None:
    pipeline, clock = make_pipeline(outbox, [f"dsmr:{m}" for m in METERS], T0)
    for step in range(readings_per_meter):
        clock.now = T0 + 60 * step
        for meter in METERS:
            [frame] = FrameDecoder("dsmr").feed(build_telegram(meter, Decimal(1000 + step), Decimal(step), clock.now))
            assert pipeline.accept(frame) is not None


def test_delivered_on_acknowledgement(outbox):
    outbox.set_nodes(["op1"])
    fill(outbox, 4)
    with Receiver() as node:
        delivery = NodeDelivery("op1", node.url, outbox, batch_size=5)
        while delivery.deliver_once():
            pass
    assert outbox.counts() == {"op1": {"delivered": 12}}
    assert len(node.stored) == 12 and set(node.sent_count().values()) == {1}
    wire = next(iter(node.stored.values()))
    assert wire["protocol"] == "dsmr" and base64.b64decode(wire["raw_frame"]).startswith(b"/ISk5")
    assert Decimal(wire["import_wh"]) * 1000 == wire["import_mwh"] and len(wire["signature"]) == 132
    assert all(SignedReading.model_validate(r).to_wire() == r for r in node.stored.values())  # the one schema


def second_minute_refused(code: str, message: str):
    """Receiver.reject: refuses the readings of the second minute with that code."""
    return lambda r: (code, message) if r["timestamp"] == int(T0) + 60 else None


def test_rejected_reading_is_refused_and_never_retried(outbox):
    outbox.set_nodes(["op1"])
    fill(outbox, 2)
    with Receiver() as node:
        node.reject = second_minute_refused("bad_signature", "signer is not the registered key")
        delivery = NodeDelivery("op1", node.url, outbox)
        assert delivery.deliver_once() == 6
        assert delivery.deliver_once() == 0
    assert outbox.counts() == {"op1": {"delivered": 3, "refused": 3}}
    assert set(outbox.refusal_reasons("op1").values()) == {"bad_signature: signer is not the registered key"}
    assert len(node.posts) == 1


def test_a_retryable_refusal_keeps_the_reading_pending_until_accepted(outbox):
    """future_timestamp: the node's clock lags; the same reading is accepted once it caught up."""
    assert RefusalCode.FUTURE_TIMESTAMP.retryable and not RefusalCode.BAD_SIGNATURE.retryable
    outbox.set_nodes(["op1"])
    fill(outbox, 2)
    with Receiver() as node:
        node.reject = second_minute_refused("future_timestamp", "timestamp is in the future")
        delivery = NodeDelivery("op1", node.url, outbox)
        assert delivery.deliver_once() == 6 and outbox.counts() == {"op1": {"delivered": 3, "pending": 3}}
        with pytest.raises(DeliveryError, match="deferred all 3 readings"):  # only deferred ones: back off
            delivery.deliver_once()
        node.reject = lambda r: None  # the node's clock caught up
        assert delivery.deliver_once() == 3
    assert outbox.counts() == {"op1": {"delivered": 6}}


def test_server_error_keeps_readings_pending(outbox):
    outbox.set_nodes(["op1"])
    fill(outbox, 1)
    with Receiver() as node:
        node.status = 503
        delivery = NodeDelivery("op1", node.url, outbox)
        with pytest.raises(DeliveryError, match="answered 503"):
            delivery.deliver_once()
        assert outbox.counts() == {"op1": {"pending": 3}}
        node.status = 200
        assert delivery.deliver_once() == 3
    assert outbox.counts() == {"op1": {"delivered": 3}}


def test_node_down_gets_the_backlog_when_it_returns(outbox):
    port = free_port()
    outbox.set_nodes(["op1", "op2"])
    fill(outbox, 3)
    with Receiver() as op2:
        down = NodeDelivery("op1", f"http://127.0.0.1:{port}", outbox, timeout_s=2)
        with pytest.raises(DeliveryError, match="node op1 unreachable"):
            down.deliver_once()
        up = NodeDelivery("op2", op2.url, outbox)
        while up.deliver_once():
            pass
    assert outbox.counts() == {"op1": {"pending": 9}, "op2": {"delivered": 9}}
    with Receiver(port) as op1:
        while down.deliver_once():
            pass
        assert len(op1.stored) == 9
    assert outbox.counts() == {"op1": {"delivered": 9}, "op2": {"delivered": 9}}


def test_a_node_added_later_gets_every_reading(outbox):
    outbox.set_nodes(["op1"])
    fill(outbox, 1)
    outbox.set_nodes(["op1", "op2"])
    assert outbox.counts() == {"op1": {"pending": 3}, "op2": {"pending": 3}}


@pytest.mark.parametrize("answer, error", [
    ((200, b"<html>gateway</html>"), "unreadable body"),
    ((200, b'{"accepted": [0, 1, 7]}'), "indices outside the batch"),
    ((422, b'{"accepted": [0]}'), "without naming a rejected reading"),
    ((422, b'{"rejected": [{"index": 0, "code": "no_such_code", "message": "?"}]}'), "unreadable body"),
    ((422, b'{"rejected": [{"index": 0, "reason": "the old free-text form"}]}'), "unreadable body"),
    ((400, b'{"detail": "malformed"}'), "answered 400"),
])
def test_answer_outside_the_protocol_keeps_readings_pending(outbox, answer, error):
    outbox.set_nodes(["op1"])
    fill(outbox, 1)
    with Receiver() as node:
        node.answer = answer
        delivery = NodeDelivery("op1", node.url, outbox)
        with pytest.raises(DeliveryError, match=error):
            delivery.deliver_once()
    assert outbox.counts() == {"op1": {"pending": 3}}


def test_backoff_doubles_to_its_cap():
    b = Backoff(0.5, 4)
    assert [b.failed() for _ in range(5)] == [0.5, 1, 2, 4, 4]
    b.succeeded()
    assert b.failed() == 0.5
