"""What a framer yields besides a complete frame: a stretch of bytes it had to drop, and why."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dropped:
    reason: str
    raw: bytes
