"""geth unlocks the keystores this project writes whatever the random IV: eth-keyfile drops the
IV's leading zero bytes (one keystore in 256), and geth built with Go >= 1.24 panics on the
short IV ("bad IV length"). That is how a Clique signer used to die at start now and then."""
from __future__ import annotations

import json
import subprocess

import eth_keyfile.keyfile
import pytest
from eth_account import Account

from devnet.geth import ensure_geth
from rust_core.keystore import encrypt_key

KEY = bytes(range(1, 33))


@pytest.fixture
def iv_with_a_leading_zero(monkeypatch):
    """eth-keyfile's randomness (salt and IV, 16 bytes each) with a zero first byte."""
    monkeypatch.setattr(eth_keyfile.keyfile.Random, "get_random_bytes", lambda n: b"\x00" + b"\x5a" * (n - 1))


def geth_unlocks(tmp_path, keystore: dict) -> subprocess.CompletedProcess:
    """`geth account update`: unlocks (decrypts) the key, then re-encrypts it; passwords on stdin."""
    (tmp_path / "keystore").mkdir()
    (tmp_path / "keystore" / "key.json").write_text(json.dumps(keystore))
    return subprocess.run([str(ensure_geth()), "account", "update", "--keystore", str(tmp_path / "keystore"),
                           "0x" + keystore["address"]], input="pw\nnew\nnew\n", capture_output=True, text=True,
                          timeout=120)


@pytest.mark.network
def test_geth_unlocks_a_keystore_whose_random_iv_begins_with_zero(tmp_path, iv_with_a_leading_zero):
    keystore = encrypt_key(KEY, "pw", kdf="pbkdf2", iterations=1)
    assert len(bytes.fromhex(keystore["crypto"]["cipherparams"]["iv"])) == 16
    assert bytes(Account.decrypt(keystore, "pw")) == KEY
    result = geth_unlocks(tmp_path, keystore)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Unlocked account" in result.stderr


@pytest.mark.network
def test_the_keystore_eth_account_writes_alone_makes_geth_panic(tmp_path, iv_with_a_leading_zero):
    """The control: without the padding the same randomness gives the short IV geth dies on."""
    keystore = Account.encrypt(KEY, "pw", kdf="pbkdf2", iterations=1)
    assert len(bytes.fromhex(keystore["crypto"]["cipherparams"]["iv"])) == 15
    result = geth_unlocks(tmp_path, keystore)
    assert result.returncode != 0
    assert "bad IV length" in result.stderr
