"""The Signer interface: what the ledger requires of a batch signature (65 bytes r||s||v, v 27/28,
low s, recoverable to the operator), a signed transaction from the operator's address, and a
second implementation (eth-account's, as a KMS adapter would be) that the node accepts alike."""
from __future__ import annotations

import pytest
from eth_account import Account

import rust_core
from node.chain import Chain
from node.signer import LocalKeySigner, Signer
from rust_core.keystore import write_keystore

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2


class EthAccountSigner:
    """Another Signer: eth-account's own signing, standing in for a KMS / HSM adapter."""

    def __init__(self, key: bytes) -> None:
        self._account = Account.from_key(key)
        self.address = self._account.address

    def sign_digest(self, digest: bytes) -> bytes:
        return bytes(self._account.unsafe_sign_hash(digest).signature)

    def sign_transaction(self, tx: dict) -> bytes:
        return bytes(self._account.sign_transaction(tx).raw_transaction)


@pytest.mark.parametrize("signer", [LocalKeySigner(KEY), EthAccountSigner(KEY)], ids=["local", "eth-account"])
def test_digest_signatures_are_what_the_ledger_accepts(signer):
    assert isinstance(signer, Signer)
    for i in range(20):
        digest = rust_core.keccak256(f"batch {i}".encode())
        sig = signer.sign_digest(digest)
        assert len(sig) == 65 and sig[64] in (27, 28) and int.from_bytes(sig[32:64], "big") <= HALF_N
        assert rust_core.recover_signer(digest, sig) == bytes.fromhex(signer.address[2:])
        assert sig == LocalKeySigner(KEY).sign_digest(digest)  # RFC 6979: both implementations agree


def test_signed_transactions_come_from_the_operator():
    signer = LocalKeySigner(KEY)
    tx = {"to": "0x" + "22" * 20, "value": 0, "gas": 21000, "maxFeePerGas": 2 * 10**9,
          "maxPriorityFeePerGas": 10**9, "nonce": 7, "chainId": 31337, "data": b""}
    raw = signer.sign_transaction(tx)
    assert Account.recover_transaction(raw) == signer.address == Account.from_key(KEY).address


def test_from_keystore_and_the_key_never_in_repr(tmp_path):
    write_keystore(tmp_path / "op.json", KEY, "pw", iterations=1000)
    signer = LocalKeySigner.from_keystore(tmp_path / "op.json", "pw")
    assert signer.address == Account.from_key(KEY).address and KEY.hex() not in repr(signer)
    with pytest.raises(ValueError, match="cannot decrypt keystore"):
        LocalKeySigner.from_keystore(tmp_path / "op.json", "wrong")


def test_chain_takes_any_signer_or_a_raw_key():
    other = EthAccountSigner(KEY)
    assert Chain("http://127.0.0.1:1", "0x" + "11" * 20, "0x" + "22" * 20, other).signer is other
    from_key = Chain("http://127.0.0.1:1", "0x" + "11" * 20, "0x" + "22" * 20, KEY)
    assert isinstance(from_key.signer, LocalKeySigner) and from_key.address == bytes.fromhex(other.address[2:])
