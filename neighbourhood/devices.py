"""Physical models of the household devices, period by period.

Energy in integer mWh per period; `t` is the unix time at which a period starts. Time of day is
taken in UTC and read as local solar time. Random variation is seeded per device and period
(`random.Random(f"{seed}:{kind}:{period}")`), so a device gives the same value for the same
period whatever else was simulated before.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction

DAY_SECONDS = 86_400


class DeviceError(ValueError):
    """A device asked to do what it physically cannot; the message says what and why."""


def hour_of_day(t: float) -> float:
    return (t % DAY_SECONDS) / 3600


def energy_mwh(power_w: float, seconds: int) -> int:
    """Energy of a constant power over `seconds`, rounded to the nearest mWh."""
    return round(power_w * seconds / 3.6)


def _noise(seed: int, kind: str, t: int, period_seconds: int) -> random.Random:
    return random.Random(f"{seed}:{kind}:{t // period_seconds}")


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)) or not value > 0:
        raise DeviceError(f"{name} must be a positive number, got {value!r}")
    return value


@dataclass(frozen=True)
class SolarPanel:
    """Clear-sky day curve (sine between sunrise and sunset) times a seeded cloud factor."""

    peak_w: float
    seed: int
    period_seconds: int = 900
    sunrise_h: float = 6.0
    sunset_h: float = 18.0
    min_clearness: float = 0.6  # cloud factor drawn uniformly from [min_clearness, 1]

    def __post_init__(self) -> None:
        _positive("peak_w", self.peak_w)
        if not 0 <= self.sunrise_h < self.sunset_h <= 24:
            raise DeviceError(f"need 0 <= sunrise_h < sunset_h <= 24, got {self.sunrise_h}, {self.sunset_h}")
        if not 0 <= self.min_clearness <= 1:
            raise DeviceError(f"min_clearness must be within [0, 1], got {self.min_clearness}")

    def clear_sky_w(self, hour: float) -> float:
        if not self.sunrise_h < hour < self.sunset_h:
            return 0.0
        x = (hour - self.sunrise_h) / (self.sunset_h - self.sunrise_h)
        return self.peak_w * math.sin(math.pi * x) ** 1.5

    def production_mwh(self, t: int) -> int:
        clear = self.clear_sky_w(hour_of_day(t + self.period_seconds / 2))
        if clear == 0.0:
            return 0
        factor = _noise(self.seed, "solar", t, self.period_seconds).uniform(self.min_clearness, 1.0)
        return energy_mwh(clear * factor, self.period_seconds)


@dataclass(frozen=True)
class PlainLoad:
    """Household base load with morning and evening peaks and seeded +-25 % variation."""

    base_w: float
    peak_w: float
    seed: int
    period_seconds: int = 900

    def __post_init__(self) -> None:
        _positive("base_w", self.base_w)
        _positive("peak_w", self.peak_w)

    def demand_mwh(self, t: int) -> int:
        hour = hour_of_day(t + self.period_seconds / 2)
        shape = math.exp(-((hour - 7.5) / 1.0) ** 2) + math.exp(-((hour - 19.5) / 1.8) ** 2)
        factor = _noise(self.seed, "load", t, self.period_seconds).uniform(0.75, 1.25)
        return energy_mwh((self.base_w + self.peak_w * shape) * factor, self.period_seconds)


class Battery:
    """A stationary battery: state of charge in mWh, power limits, one-way efficiencies.

    Energies at its terminals (what the meter sees) are integer mWh; charging stores
    `floor(e * charge_efficiency)`, discharging draws `ceil(e / discharge_efficiency)`, so the
    state of charge stays an exact integer within [min_soc_mwh, capacity_mwh].
    """

    def __init__(self, capacity_mwh: int, max_charge_w: float, max_discharge_w: float,
                 soc_mwh: int, min_soc_mwh: int = 0, efficiency: Fraction = Fraction(95, 100),
                 period_seconds: int = 900) -> None:
        for name, value in (("capacity_mwh", capacity_mwh), ("soc_mwh", soc_mwh), ("min_soc_mwh", min_soc_mwh)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DeviceError(f"{name} must be a non-negative integer, got {value!r}")
        if not min_soc_mwh <= soc_mwh <= capacity_mwh:
            raise DeviceError(f"need min_soc_mwh <= soc_mwh <= capacity_mwh, got {min_soc_mwh}, {soc_mwh}, {capacity_mwh}")
        if not isinstance(efficiency, Fraction) or not 0 < efficiency <= 1:
            raise DeviceError(f"efficiency must be a Fraction in (0, 1], got {efficiency!r}")
        self.capacity_mwh = capacity_mwh
        self.min_soc_mwh = min_soc_mwh
        self.soc_mwh = soc_mwh
        self.efficiency = efficiency
        self.max_charge_mwh = energy_mwh(_positive("max_charge_w", max_charge_w), period_seconds)
        self.max_discharge_mwh = energy_mwh(_positive("max_discharge_w", max_discharge_w), period_seconds)

    @property
    def soc_fraction(self) -> float:
        return self.soc_mwh / self.capacity_mwh if self.capacity_mwh else 1.0

    def charge_room_mwh(self) -> int:
        """Most terminal energy it can take this period."""
        room = (self.capacity_mwh - self.soc_mwh) * self.efficiency.denominator // self.efficiency.numerator
        if room * self.efficiency.numerator // self.efficiency.denominator == 0:
            return 0  # what it could take would all be lost
        return min(self.max_charge_mwh, room)

    def discharge_room_mwh(self) -> int:
        """Most terminal energy it can deliver this period."""
        room = (self.soc_mwh - self.min_soc_mwh) * self.efficiency.numerator // self.efficiency.denominator
        return min(self.max_discharge_mwh, room)

    def charge(self, e_mwh: int) -> None:
        if not 0 <= e_mwh <= self.charge_room_mwh():
            raise DeviceError(f"battery cannot charge {e_mwh} mWh (room {self.charge_room_mwh()} mWh)")
        self.soc_mwh += e_mwh * self.efficiency.numerator // self.efficiency.denominator

    def discharge(self, e_mwh: int) -> None:
        if not 0 <= e_mwh <= self.discharge_room_mwh():
            raise DeviceError(f"battery cannot deliver {e_mwh} mWh (available {self.discharge_room_mwh()} mWh)")
        self.soc_mwh -= -(-e_mwh * self.efficiency.denominator // self.efficiency.numerator)


@dataclass(frozen=True)
class ChargingSession:
    """The car is plugged in from `arrival` until `departure` (unix s) and needs `energy_mwh` by then."""

    arrival: int
    departure: int
    energy_mwh: int


class EVCharger:
    """A wallbox with its car's charging sessions; delivers at most `max_w` during a period."""

    def __init__(self, max_w: float, sessions: list[ChargingSession], period_seconds: int = 900) -> None:
        self.max_mwh = energy_mwh(_positive("max_w", max_w), period_seconds)
        self.period_seconds = period_seconds
        ordered = sorted(sessions, key=lambda s: s.arrival)
        for s in ordered:
            if s.arrival % period_seconds or s.departure % period_seconds or s.departure <= s.arrival:
                raise DeviceError(f"session {s} must start and end on period boundaries, arrival first")
            periods = (s.departure - s.arrival) // period_seconds
            if not 0 <= s.energy_mwh <= periods * self.max_mwh:
                raise DeviceError(
                    f"session {s} needs {s.energy_mwh} mWh but can get at most "
                    f"{periods * self.max_mwh} mWh in {periods} periods"
                )
        for first, second in zip(ordered, ordered[1:]):
            if second.arrival < first.departure:
                raise DeviceError(f"sessions overlap: {first} and {second}")
        self.sessions = tuple(ordered)
        self.delivered = {s: 0 for s in self.sessions}

    def session_at(self, t: int) -> ChargingSession | None:
        for s in self.sessions:
            if s.arrival <= t < s.departure:
                return s
        return None

    def remaining_mwh(self, t: int) -> int:
        s = self.session_at(t)
        return 0 if s is None else s.energy_mwh - self.delivered[s]

    def charge(self, t: int, e_mwh: int) -> None:
        if e_mwh == 0:
            return
        s = self.session_at(t)
        if s is None:
            raise DeviceError(f"no car plugged in at {t}, cannot charge {e_mwh} mWh")
        if not 0 < e_mwh <= min(self.max_mwh, self.remaining_mwh(t)):
            raise DeviceError(
                f"cannot charge {e_mwh} mWh at {t}: limit {self.max_mwh}, still needed {self.remaining_mwh(t)}"
            )
        self.delivered[s] += e_mwh


def outdoor_temperature(t: float, mean_c: float = 4.0, amplitude_c: float = 5.0) -> float:
    """A cool spring day: coldest at 03:00, warmest at 15:00."""
    return mean_c + amplitude_c * math.cos(2 * math.pi * (hour_of_day(t) - 15) / 24)


class HeatPump:
    """A heat pump heating one house, modelled as a single thermal capacity with losses.

    Over a period the indoor temperature relaxes towards the outdoor one with time constant
    `capacity / loss`; running a fraction f of the period adds `f * gain` kelvin.
    """

    def __init__(self, electric_w: float, cop: float, loss_w_per_k: float, capacity_wh_per_k: float,
                 indoor_c: float, period_seconds: int = 900) -> None:
        self.full_mwh = energy_mwh(_positive("electric_w", electric_w), period_seconds)
        _positive("cop", cop)
        _positive("loss_w_per_k", loss_w_per_k)
        _positive("capacity_wh_per_k", capacity_wh_per_k)
        hours = period_seconds / 3600
        self.decay = math.exp(-hours * loss_w_per_k / capacity_wh_per_k)
        # steady-state rise at full power, reached in the same exponential way
        self.gain_k = electric_w * cop / loss_w_per_k * (1 - self.decay)
        self.indoor_c = indoor_c
        self.period_seconds = period_seconds

    def free_running_c(self, t: int) -> float:
        """Indoor temperature at the end of the period if it stays off."""
        outdoor = outdoor_temperature(t + self.period_seconds / 2)
        return outdoor + (self.indoor_c - outdoor) * self.decay

    def run(self, t: int, e_mwh: int) -> None:
        if not 0 <= e_mwh <= self.full_mwh:
            raise DeviceError(f"heat pump cannot take {e_mwh} mWh in one period (full power {self.full_mwh} mWh)")
        self.indoor_c = self.free_running_c(t) + self.gain_k * e_mwh / self.full_mwh


@dataclass(frozen=True)
class Miner:
    """A flexible load (e.g. a bitcoin miner) that can draw up to `max_w`."""

    max_w: float
    period_seconds: int = 900

    def __post_init__(self) -> None:
        _positive("max_w", self.max_w)

    @property
    def max_mwh(self) -> int:
        return energy_mwh(self.max_w, self.period_seconds)
