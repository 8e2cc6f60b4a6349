"""Simple household register sources: power as a function of time (and, for the heat pump, of
its own state), integrated into cumulative import/export registers in Wh.

Each source integrates in steps of at most `step_s` from its start time; asking for an earlier
time than the last one returns the last registers (a register never runs backwards).
"""
from __future__ import annotations

import math
from decimal import Decimal

_WH = Decimal("0.001")  # registers kept to the milliwatt-hour


class IntegratingSource:
    """Base: subclasses give net power in W at time t (positive import, negative export)."""

    step_s = 60.0

    def __init__(self, start: float, import_wh: float = 0.0, export_wh: float = 0.0) -> None:
        self._t = start
        self._imp = import_wh
        self._exp = export_wh

    def power_w(self, t: float) -> float:
        raise NotImplementedError

    def registers(self, now: float) -> tuple[Decimal, Decimal]:
        while self._t < now:
            dt = min(self.step_s, now - self._t)
            p = self.power_w(self._t + dt / 2)
            wh = abs(p) * dt / 3600
            if p >= 0:
                self._imp += wh
            else:
                self._exp += wh
            self._t += dt
        return Decimal(self._imp).quantize(_WH, rounding="ROUND_FLOOR"), Decimal(self._exp).quantize(_WH, rounding="ROUND_FLOOR")


def _hour(t: float) -> float:
    return (t % 86400) / 3600


class PlainLoad(IntegratingSource):
    """A household: base load plus a morning and an evening peak."""

    def __init__(self, start: float, base_w: float = 250, peak_w: float = 2500, **kw) -> None:
        super().__init__(start, **kw)
        self.base_w, self.peak_w = base_w, peak_w

    def power_w(self, t: float) -> float:
        h = _hour(t)
        bump = math.exp(-((h - 7.5) ** 2) / 1.5) + 1.2 * math.exp(-((h - 19) ** 2) / 3)
        return self.base_w + self.peak_w * bump / 1.2


class SolarPanel(IntegratingSource):
    """PV: a sine between 06:00 and 18:00 (UTC), exports only."""

    def __init__(self, start: float, peak_w: float = 5000, **kw) -> None:
        super().__init__(start, **kw)
        self.peak_w = peak_w

    def power_w(self, t: float) -> float:
        h = _hour(t)
        return -self.peak_w * math.sin(math.pi * (h - 6) / 12) if 6 < h < 18 else 0.0


class Battery(IntegratingSource):
    """Home battery: charges around noon from the solar surplus, discharges in the evening,
    within its capacity."""

    def __init__(self, start: float, capacity_wh: float = 10_000, power_w: float = 3000, soc: float = 0.2, **kw) -> None:
        super().__init__(start, **kw)
        self.capacity_wh, self.rate_w = capacity_wh, power_w
        self.stored_wh = capacity_wh * soc

    def power_w(self, t: float) -> float:
        h = _hour(t)
        want = self.rate_w if 10 <= h < 15 else -self.rate_w if 17 <= h < 23 else 0.0
        room = self.capacity_wh - self.stored_wh
        p = min(want, room * 3600 / self.step_s) if want > 0 else max(want, -self.stored_wh * 3600 / self.step_s)
        self.stored_wh += p * self.step_s / 3600 if p else 0.0
        return p


class EvCharger(IntegratingSource):
    """Charges at a fixed power from plug-in until the car's energy need is met."""

    def __init__(self, start: float, power_w: float = 11_000, plug_in_hour: float = 18, need_wh: float = 30_000, **kw) -> None:
        super().__init__(start, **kw)
        self.rate_w, self.plug_in_hour, self.need_wh = power_w, plug_in_hour, need_wh
        self._charged_today = 0.0
        self._day = int(start // 86400)

    def power_w(self, t: float) -> float:
        day = int(t // 86400)
        if day != self._day:
            self._day, self._charged_today = day, 0.0
        if _hour(t) < self.plug_in_hour or self._charged_today >= self.need_wh:
            return 0.0
        self._charged_today += self.rate_w * self.step_s / 3600
        return self.rate_w


class HeatPumpThermostat(IntegratingSource):
    """A heat pump switched by a thermostat with hysteresis; the house cools towards the outdoor
    temperature (a daily sine) and the pump heats it."""

    step_s = 30.0

    def __init__(self, start: float, electric_w: float = 2500, setpoint_c: float = 20.5, band_c: float = 0.5,
                 indoor_c: float = 20.0, **kw) -> None:
        super().__init__(start, **kw)
        self.electric_w, self.setpoint_c, self.band_c = electric_w, setpoint_c, band_c
        self.indoor_c = indoor_c
        self.on = False

    def power_w(self, t: float) -> float:
        outdoor = 2 + 5 * math.sin(math.pi * (_hour(t) - 9) / 12)
        if self.indoor_c < self.setpoint_c - self.band_c:
            self.on = True
        elif self.indoor_c > self.setpoint_c + self.band_c:
            self.on = False
        heating_c_per_h = 3.0 if self.on else 0.0
        self.indoor_c += (heating_c_per_h - 0.1 * (self.indoor_c - outdoor)) * self.step_s / 3600
        return self.electric_w if self.on else 0.0


class FixedRegisters:
    """Registers set by hand (tests): a meter whose values the caller controls."""

    def __init__(self, import_wh: Decimal | str | int = 0, export_wh: Decimal | str | int = 0) -> None:
        self.import_wh, self.export_wh = Decimal(import_wh), Decimal(export_wh)

    def registers(self, now: float) -> tuple[Decimal, Decimal]:
        return self.import_wh, self.export_wh
