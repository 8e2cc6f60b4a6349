"""Plausibility checks of a decoded frame against the meter's last accepted reading."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from meter_oracle.errors import ClockSkew, ImplausiblePower, RegisterRegression
from meter_oracle.reading import MeterFrame


@dataclass(frozen=True)
class LastReading:
    timestamp: int
    import_mwh: int
    export_mwh: int


def check_clock(frame: MeterFrame, now: float, max_skew_s: float) -> None:
    if frame.meter_time is not None and abs(frame.meter_time - now) > max_skew_s:
        raise ClockSkew(
            f"clock skew of {frame.meter_label}: meter time {frame.meter_time:.0f} vs oracle time "
            f"{now:.0f} differ by {abs(frame.meter_time - now):.0f} s (limit {max_skew_s:.0f} s)"
        )


def check_against_last(frame: MeterFrame, timestamp: int, last: LastReading | None, max_power_w: int) -> None:
    """Registers never run backwards; the energy since the last reading fits the meter's power."""
    if frame.power_w is not None and abs(frame.power_w) > max_power_w:
        raise ImplausiblePower(
            f"implausible power of {frame.meter_label}: meter reports {frame.power_w} W (limit {max_power_w} W)"
        )
    if last is None:
        return
    if timestamp <= last.timestamp:
        raise ClockSkew(
            f"oracle clock not after the last reading of {frame.meter_label}: {timestamp} <= {last.timestamp}"
        )
    for name, now_mwh, then_mwh in (
        ("import", frame.import_mwh, last.import_mwh),
        ("export", frame.export_mwh, last.export_mwh),
    ):
        if now_mwh < then_mwh:
            raise RegisterRegression(
                f"{name} register of {frame.meter_label} ran backwards: {now_mwh} mWh < {then_mwh} mWh "
                f"accepted at {last.timestamp}"
            )
        # mWh over seconds -> W: mWh * 3.6 / s
        watts = Decimal(now_mwh - then_mwh) * Decimal("3.6") / (timestamp - last.timestamp)
        if watts > max_power_w:
            raise ImplausiblePower(
                f"implausible {name} of {frame.meter_label}: {now_mwh - then_mwh} mWh in "
                f"{timestamp - last.timestamp} s is {watts:.0f} W average (limit {max_power_w} W)"
            )
