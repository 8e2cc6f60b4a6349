"""What the node signs with: a Signer holds the operator key (or reaches it) and signs batch
digests and transactions. LocalKeySigner keeps the key in memory, read from an encrypted
keystore; a KMS or HSM signer implements the same three members and never reveals the key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from eth_account import Account

import rust_core
from rust_core.keystore import read_keystore


@runtime_checkable
class Signer(Protocol):
    @property
    def address(self) -> str:
        """The checksummed address of the operator key (what MeterRegistry.addOperator took)."""

    def sign_digest(self, digest: bytes) -> bytes:
        """A 32-byte digest -> 65-byte r||s||v, v in {27, 28}, s in the lower half of the curve
        order (the ledger refuses high-s signatures). A KMS returning DER must normalise."""

    def sign_transaction(self, tx: dict) -> bytes:
        """A transaction dict as web3's build_transaction returns it -> the raw signed bytes."""


class LocalKeySigner:
    """The key in this process's memory (rust_core signs digests, eth-account transactions)."""

    def __init__(self, private_key: bytes) -> None:
        self._account = Account.from_key(private_key)
        self._key = bytes(private_key)

    @classmethod
    def from_keystore(cls, path: Path, password: str) -> LocalKeySigner:
        return cls(read_keystore(path, password))

    @property
    def address(self) -> str:
        return self._account.address

    def sign_digest(self, digest: bytes) -> bytes:
        return rust_core.sign_digest(digest, self._key)

    def sign_transaction(self, tx: dict) -> bytes:
        return bytes(self._account.sign_transaction(tx).raw_transaction)

    def __repr__(self) -> str:  # never the key
        return f"LocalKeySigner({self.address})"
