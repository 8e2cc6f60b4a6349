"""Why a frame or a reading was refused. Every refusal carries a reason a person can act on."""
from __future__ import annotations


class Refused(ValueError):
    """Base of every refusal: the reason is the message."""

    @property
    def reason(self) -> str:
        return str(self)


class FrameRefused(Refused):
    """The bytes are not a valid frame of the protocol (CRC, structure, unit, missing register)."""


class CheckFailed(Refused):
    """A well-formed frame whose values fail a plausibility check."""


class RegisterRegression(CheckFailed):
    """A cumulative register is lower than the last accepted reading of the same meter."""


class ImplausiblePower(CheckFailed):
    """The energy delta implies more power than the meter point can carry."""


class ClockSkew(CheckFailed):
    """The meter clock and the oracle clock disagree, or the oracle clock went backwards."""


class UnknownMeter(CheckFailed):
    """No signing key is configured for this meter."""
