"""The oracle's own health, the figures MQTT and Prometheus both publish: readings waiting per
settlement node (the durable outbox's backlog), refusals per device by reason, and the age of
each device's last frame. Labels are bounded: the configured devices and nodes, and the fixed
reason kinds below (a refusal's full text stays in the outbox's `refusals` table)."""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from meter_oracle.outbox import Outbox

# reason kind -> what the refusal text starts with / contains; the first match wins
REASON_KINDS: tuple[tuple[str, re.Pattern], ...] = tuple((kind, re.compile(pattern)) for kind, pattern in (
    ("crc", r"CRC mismatch|CrcError|BCC mismatch"),
    ("decryption", r"^decryption failed|DLMS"),
    ("identity", r"identity"),
    ("unknown_meter", r"^unknown meter"),
    ("clock_skew", r"clock"),
    ("register_regression", r"ran backwards"),
    ("implausible_power", r"^implausible"),
    ("unit", r"has (SML )?unit"),
    ("stream_noise", r"bytes outside|truncated|within \d+ bytes|misaligned|InvalidEndMarker|InvalidEscape"),
    ("device_unreachable", r"^cannot connect|Modbus read"),
    ("malformed", r""),
))
OTHER_DEVICE = "other"  # a refusal from a source that is not a configured device


def reason_kind(reason: str) -> str:
    return next(kind for kind, pattern in REASON_KINDS if pattern.search(reason))


@dataclass(frozen=True)
class HealthSnapshot:
    backlog: dict[str, int]  # node -> readings not yet acknowledged
    refusals: dict[tuple[str, str], int]  # (device, reason kind) -> refusals kept
    last_frame_age_s: dict[str, float]  # device -> seconds since its last decoded frame (or since start)
    readings: dict[str, int]  # device -> readings signed since start

    def to_json(self) -> dict:
        return {
            "backlog": self.backlog,
            "refusals": {f"{device}/{kind}": n for (device, kind), n in sorted(self.refusals.items())},
            "refusals_total": sum(self.refusals.values()),
            "last_frame_age_s": {d: round(a, 3) for d, a in self.last_frame_age_s.items()},
            "readings": self.readings,
        }


@dataclass
class Health:
    """Shared by the device threads (frame_seen / accepted) and the publishers (snapshot)."""

    outbox_path: Path
    devices: list[str]
    clock: Callable[[], float] = time.time
    listeners: list = field(default_factory=list)  # objects with reading(device, frame, signed)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._started = self.clock()
        self._last: dict[str, float] = {}
        self._readings = {d: 0 for d in self.devices}

    def frame_seen(self, device: str) -> None:
        with self._lock:
            self._last[device] = self.clock()

    def accepted(self, device: str, frame, signed) -> None:
        with self._lock:
            self._readings[device] = self._readings.get(device, 0) + 1
        for listener in self.listeners:
            listener.reading(device, frame, signed)

    def snapshot(self) -> HealthSnapshot:
        outbox = Outbox(self.outbox_path)  # its own connection: snapshots come from other threads
        try:
            backlog, raw = outbox.backlog(), outbox.refusal_counts()
        finally:
            outbox.close()
        refusals: dict[tuple[str, str], int] = {}
        for (source, reason), n in raw.items():
            key = (source if source in self.devices else OTHER_DEVICE, reason_kind(reason))
            refusals[key] = refusals.get(key, 0) + n
        now = self.clock()
        with self._lock:
            ages = {d: now - self._last.get(d, self._started) for d in self.devices}
            readings = dict(self._readings)
        return HealthSnapshot(backlog, refusals, ages, readings)
