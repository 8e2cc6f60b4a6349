"""Outbox -> settlement node over real HTTP: acknowledged readings are marked delivered,
rejected ones refused with the node's code and message (a retryable code keeps them pending),
and 5xx / a node that is down keep everything pending until it comes back."""
from __future__ import annotations

import base64
import email.utils
import threading
import time
from decimal import Decimal

import pytest
from oracle_support import make_pipeline
from receiver import Receiver

from devnet.ports import free_port
from meter_oracle.delivery import Backoff, DeliveryError, NodeClocks, NodeDelivery
from meter_oracle.drivers import FrameDecoder
from meter_oracle.errors import ClockSkew
from meter_oracle.outbox import Outbox, OutboxError
from meter_oracle.simulators.dsmr_telegram import build_telegram
from rust_core.wire import RefusalCode, SignedReading

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


def test_node_not_ready_503_keeps_readings_pending_and_backs_off(outbox):
    """After a chain reset the node answers 503 node_not_ready (retryable): nothing is lost."""
    assert RefusalCode.NODE_NOT_READY.retryable
    outbox.set_nodes(["op1"])
    fill(outbox, 1)
    with Receiver() as node:
        node.answer = (503, b'{"detail": "node not ready: no contract code", "code": "node_not_ready"}')
        stop = threading.Event()

        def deliver() -> None:  # its own Outbox: one connection per thread
            own = Outbox(outbox.path)
            NodeDelivery("op1", node.url, own, backoff=Backoff(first_s=0.01, max_s=0.05)).run(stop, idle_s=0.01)
            own.close()

        worker = threading.Thread(target=deliver)
        worker.start()
        time.sleep(0.5)
        assert outbox.counts() == {"op1": {"pending": 3}} and len(node.posts) > 2
        node.answer = None
        deadline = time.time() + 10
        while outbox.counts() != {"op1": {"delivered": 3}} and time.time() < deadline:
            time.sleep(0.05)
        stop.set()
        worker.join(10)
    assert outbox.counts() == {"op1": {"delivered": 3}}


def test_413_halves_the_batch_and_a_single_oversized_reading_is_refused(outbox):
    outbox.set_nodes(["op1"])
    fill(outbox, 2)
    with Receiver() as node:
        node.answer = (413, b'{"detail": "body exceeds 4194304 bytes"}')
        delivery = NodeDelivery("op1", node.url, outbox, batch_size=4)
        for size in (2, 1):
            with pytest.raises(DeliveryError, match=f"sending {size} at a time"):
                delivery.deliver_once()
        assert delivery.deliver_once() == 1  # one reading the node never takes: refused, reason kept
        assert list(outbox.refusal_reasons("op1").values()) == ["too_large: " + '{"detail": "body exceeds 4194304 bytes"}']
        node.answer = None
        while delivery.deliver_once():
            pass
    assert outbox.counts() == {"op1": {"delivered": 5, "refused": 1}}


def test_an_oracle_clock_off_against_every_node_refuses_to_sign(outbox):
    clocks = NodeClocks(max_offset_s=20)
    outbox.set_nodes(["op1"])
    fill(outbox, 1)
    with Receiver() as node:
        fast = NodeDelivery("op1", node.url, outbox, clocks=clocks, clock=lambda: time.time() + 45)
        assert fast.deliver_once() == 3
    now = time.time() + 45
    assert 43 < clocks.offsets(now)["op1"] < 47
    with pytest.raises(ClockSkew, match=r"oracle clock off against the settlement nodes, not signing: op1 \+4"):
        clocks.check(now)
    clocks.observe("op2", email.utils.formatdate(now, usegmt=True), now)  # one node agrees: sign on
    clocks.check(now)
    pipeline, clock = make_pipeline(outbox, [f"dsmr:{m}" for m in METERS], time.time() + 45)
    pipeline.node_clocks = NodeClocks(max_offset_s=20)
    pipeline.node_clocks.observe("op1", email.utils.formatdate(time.time(), usegmt=True), clock.now)
    [frame] = FrameDecoder("dsmr").feed(build_telegram(METERS[0], Decimal(5000), Decimal(0), clock.now))
    pipeline.process("dsmr:E001", "dsmr", 1, frame)
    assert outbox.reading_count() == 3  # not signed, and the refusal kept with the frame
    assert "oracle clock off" in outbox.refusals()[-1][3]


@pytest.mark.parametrize("content", [b"", b"this is not an SQLite file" * 100])
def test_an_empty_or_corrupt_outbox_file_is_refused_naming_it(tmp_path, content):
    path = tmp_path / "outbox.db"
    path.write_bytes(content)
    with pytest.raises(OutboxError, match=f"outbox {path} is (an empty file|corrupt)"):
        Outbox(path)
    assert path.read_bytes() == content  # left as it was
