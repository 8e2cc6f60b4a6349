"""Meter keys in encrypted keystore files (eth-account / Web3 secret storage format)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account

from meter_oracle.errors import UnknownMeter
from meter_oracle.reading import meter_id


def write_keystore(path: Path, private_key: bytes, password: str, *, iterations: int | None = None) -> None:
    """Encrypts the key into a keystore file readable only by its owner."""
    # default: eth-account's scrypt; tests pass a small pbkdf2 iteration count for speed
    data = Account.encrypt(private_key, password, kdf="pbkdf2", iterations=iterations) if iterations \
        else Account.encrypt(private_key, password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)


def read_keystore(path: Path, password: str) -> bytes:
    try:
        return bytes(Account.decrypt(json.loads(Path(path).read_text()), password))
    except ValueError as e:
        raise ValueError(f"cannot decrypt keystore {path}: {e}") from None


@dataclass(frozen=True)
class MeterKey:
    label: str  # "scheme:identity", e.g. "dsmr:4B38..."
    private_key: bytes
    max_power_w: int


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
