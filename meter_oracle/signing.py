"""EIP-712 signing of readings (ARCHITECTURE.md "Reading") with the meter's key.

RustCoreSigner is the oracle's signer (libsecp256k1 through rust_core, batched). EthAccountSigner
is the independent eth-account implementation of the same typed data; it is the benchmark
baseline and the cross-check in the tests (RFC 6979 signatures are deterministic, so both must
produce identical bytes).
"""
from __future__ import annotations

from eth_account import Account

from rust_core import reference
from rust_core.wire import Domain, Reading

__all__ = ["Domain", "EthAccountSigner", "Reading", "RustCoreSigner", "address_of"]


class RustCoreSigner:
    name = "rust_core"

    def __init__(self, domain: Domain) -> None:
        import rust_core

        self._core = rust_core
        self._sep = rust_core.domain_separator(domain.chain_id, domain.verifying_contract)

    def sign(self, reading: Reading, key: bytes) -> bytes:
        return self._core.sign_digest(self._core.reading_digest(self._sep, reading), key)

    def sign_many(self, readings: list[Reading], keys: list[bytes]) -> list[bytes]:
        return self._core.sign_readings(self._sep, readings, keys)

    def recover(self, reading: Reading, signature: bytes) -> bytes:
        return self._core.recover_signer(self._core.reading_digest(self._sep, reading), signature)


class EthAccountSigner:
    """rust_core.reference: the same typed data through eth-account, one reading at a time."""

    name = "eth-account"

    def __init__(self, domain: Domain) -> None:
        self._domain = domain

    def sign(self, reading: Reading, key: bytes) -> bytes:
        return reference.sign_reading(self._domain, reference.Reading(*reading), key)

    def sign_many(self, readings: list[Reading], keys: list[bytes]) -> list[bytes]:
        return [self.sign(r, k) for r, k in zip(readings, keys, strict=True)]

    def recover(self, reading: Reading, signature: bytes) -> bytes:
        signer = reference.recover_reading_signer(self._domain, reference.Reading(*reading), signature)
        return bytes.fromhex(signer[2:])


def address_of(key: bytes) -> bytes:
    return bytes.fromhex(Account.from_key(key).address[2:])
