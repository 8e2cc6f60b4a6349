"""validate -> sign -> outbox: what happens to every decoded frame, in that order."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from meter_oracle.checks import check_against_last, check_clock
from meter_oracle.errors import Refused, UnknownMeter
from meter_oracle.framing import Dropped
from meter_oracle.keystore import Keyring
from meter_oracle.outbox import Outbox
from meter_oracle.reading import MeterFrame, SignedReading
from rust_core.wire import Reading

log = logging.getLogger("meter_oracle")


class Pipeline:
    def __init__(
        self,
        outbox: Outbox,
        keyring: Keyring,
        signer,
        *,
        period_seconds: int = 900,
        max_skew_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        health=None,
        node_clocks=None,
    ) -> None:
        """health: a health.Health told of every decoded frame and accepted reading (MQTT, metrics);
        node_clocks: a delivery.NodeClocks, consulted before signing (no reading signed with a clock
        the nodes disagree with)."""
        self.outbox = outbox
        self.keyring = keyring
        self.signer = signer
        self.period_seconds = period_seconds
        self.max_skew_s = max_skew_s
        self.clock = clock
        self.health = health
        self.node_clocks = node_clocks

    def accept(self, frame: MeterFrame, min_interval_s: float = 0) -> SignedReading | None:
        """Checks, signs and stores the frame's reading; None when the meter was read less than
        min_interval_s (at least one second) ago (a P1 port sends every second; one reading a minute is plenty).
        Raises a Refused subclass naming the failed check."""
        if not frame.identity:
            raise UnknownMeter(f"{frame.protocol} frame carries no meter identity: set identity for this device in the configuration")
        key = self.keyring.key_for(frame.meter_id, frame.meter_label)
        now = self.clock()
        timestamp = int(now)
        last = self.outbox.last_reading(frame.meter_id)
        if last is not None and 0 <= timestamp - last.timestamp < max(min_interval_s, 1):
            return None  # readings are per second: a second frame in the same second adds nothing
        check_clock(frame, now, self.max_skew_s)
        if self.node_clocks is not None:
            self.node_clocks.check(now)
        check_against_last(frame, timestamp, last, key.max_power_w)
        reading = Reading(frame.meter_id, timestamp // self.period_seconds, timestamp, frame.import_mwh,
                          frame.export_mwh)
        signed = SignedReading(
            **reading._asdict(),
            signature=self.signer.sign(reading, key.signing_key(reading.period)),
            import_wh=frame.import_wh,
            export_wh=frame.export_wh,
            raw_frame=frame.raw_frame,
            protocol=frame.protocol,
        )
        self.outbox.add(signed)
        return signed

    def process(self, source: str, protocol: str, frame_no: int, item: MeterFrame | Dropped,
                min_interval_s: float = 0) -> SignedReading | None:
        """accept() with every refusal logged (source, frame, meter, reason) and kept in the outbox."""
        if isinstance(item, Dropped):
            self._refuse(source, protocol, frame_no, None, item.reason, item.raw)
            return None
        if self.health is not None:
            self.health.frame_seen(source)
        try:
            signed = self.accept(item, min_interval_s)
        except Refused as e:
            self._refuse(source, protocol, frame_no, item.meter_label, e.reason, item.raw_frame)
            return None
        if signed is not None and self.health is not None:
            self.health.accepted(source, item, signed)
        if signed is not None:
            log.info("%s frame %d: %s import %s Wh export %s Wh signed for period %d",
                     source, frame_no, item.meter_label, item.import_wh, item.export_wh, signed.period)
        return signed

    def _refuse(self, source: str, protocol: str, frame_no: int, meter: str | None, reason: str, raw: bytes) -> None:
        log.warning("%s frame %d refused (meter %s): %s", source, frame_no, meter or "unknown", reason)
        self.outbox.add_refusal(source, protocol, meter, reason, raw)
