"""Meter keys in encrypted keystore files (the config that reads them: test_oracle_config.py)."""
from __future__ import annotations

import json

import pytest
from oracle_support import key_for

from rust_core.keystore import read_keystore, write_keystore

KEY = key_for("keystore")


def test_keystore_round_trip_and_wrong_password(tmp_path):
    path = tmp_path / "k.json"
    write_keystore(path, KEY, "correct horse", iterations=1000)
    assert KEY.hex() not in path.read_text() and json.loads(path.read_text())["crypto"]["kdf"] == "pbkdf2"
    assert path.stat().st_mode & 0o077 == 0
    assert read_keystore(path, "correct horse") == KEY
    with pytest.raises(ValueError, match=r"cannot decrypt keystore .*k.json"):
        read_keystore(path, "wrong")
