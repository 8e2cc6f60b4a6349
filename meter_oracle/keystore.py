"""The oracle's meter keys (read from encrypted keystore files by rust_core.keystore), by meter id."""
from __future__ import annotations

from dataclasses import dataclass

from meter_oracle.errors import UnknownMeter
from meter_oracle.reading import meter_id
from rust_core.keystore import read_keystore, write_keystore  # noqa: F401  (defined there; imported from here too)


@dataclass(frozen=True)
class MeterKey:
    label: str  # "scheme:identity", e.g. "dsmr:4B38..."
    private_key: bytes
    max_power_w: int
    rotation: tuple[int, bytes] | None = None  # (from period, key): the registry's rotateKey

    def signing_key(self, period: int) -> bytes:
        """The key the registry expects for readings of `period` (MeterRegistry.keyAt)."""
        if self.rotation is not None and period >= self.rotation[0]:
            return self.rotation[1]
        return self.private_key


class Keyring:
    """The signing key of every configured meter, by bytes32 meter id."""

    def __init__(self, keys: list[MeterKey]) -> None:
        self._by_id = {}
        for key in keys:
            scheme, _, identity = key.label.partition(":")
            self._by_id[meter_id(scheme, identity)] = key

    def key_for(self, mid: bytes, label: str) -> MeterKey:
        try:
            return self._by_id[mid]
        except KeyError:
            raise UnknownMeter(f"unknown meter {label} (0x{mid.hex()}): no key configured") from None
