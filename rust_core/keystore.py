"""Private keys in encrypted keystore files (eth-account / Web3 secret storage, the format geth
and ape accounts use), and the config table that names one:

    keystore = "keys/p1.json"
    password_file = "keys/p1.pw"     # or password_env = "VARIABLE"

Meter keys (oracle.toml `[[meters]]`) and the settlement operator's key (node.toml `[operator]`)
are both read this way.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from rust_core.settings import ConfigPath


def encrypt_key(private_key: bytes, password: str, **kdf) -> dict:
    """`Account.encrypt` (keyword arguments: its `kdf` and `iterations`) with a full 16-byte IV.

    eth-keyfile writes the random IV as an integer's minimal big-endian bytes, so one keystore
    in 256 gets a 15-byte IV. Python reads it back as the same integer, but geth hands the bytes
    to AES-CTR, which panics on a short IV since Go 1.24 ("bad IV length": a signer that dies at
    start). Zero-padding to 16 bytes is the same counter, so the ciphertext stays valid."""
    data = Account.encrypt(private_key, password, **kdf)
    params = data["crypto"]["cipherparams"]
    params["iv"] = params["iv"].rjust(32, "0")
    return data


def write_keystore(path: Path, private_key: bytes, password: str, *, iterations: int | None = None,
                   **labels: str) -> str:
    """Encrypts the key into a new keystore file readable only by its owner; returns its address.
    `labels` are stored beside the standard fields (e.g. meter="dsmr:..."). Refuses to
    overwrite an existing file: a lost key cannot be recovered."""
    # default: eth-account's scrypt; tests pass a small pbkdf2 iteration count for speed
    data = encrypt_key(private_key, password, kdf="pbkdf2", iterations=iterations) if iterations \
        else encrypt_key(private_key, password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({**data, **labels}, f)
    return Account.from_key(private_key).address


def keystore_info(path: Path) -> dict:
    """What a keystore file says without its password: the checksummed address and its labels."""
    try:
        data = json.loads(Path(path).read_text())
        address = to_checksum_address("0x" + data["address"].removeprefix("0x"))
    except OSError as e:
        raise ValueError(f"keystore {path}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"keystore {path}: not a keystore file (no address)") from None
    return {k: v for k, v in data.items() if k not in ("crypto", "id", "version")} | {"address": address}


def read_keystore(path: Path, password: str) -> bytes:
    try:
        data = json.loads(Path(path).read_text())
    except ValueError as e:
        raise ValueError(f"keystore {path}: not JSON ({e})") from None
    try:
        return bytes(Account.decrypt(data, password))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot decrypt keystore {path}: {e}") from None


class EncryptedKey(BaseModel):
    """A config table naming a keystore and its password; the key is decrypted when the config
    is loaded, so that a wrong password stops the program at start-up, not at the first signature."""

    model_config = ConfigDict(extra="forbid")

    keystore: ConfigPath
    password_file: ConfigPath | None = None  # one line: the password
    password_env: str | None = None  # the name of the environment variable holding it
    _private_key: bytes = PrivateAttr(b"")

    @model_validator(mode="after")
    def _decrypt(self):
        if (self.password_file is None) == (self.password_env is None):
            raise ValueError("set exactly one of password_file or password_env")
        password: str | None
        if self.password_file is not None:
            try:
                password = self.password_file.read_text().strip()
            except OSError as e:
                raise ValueError(f"password file {self.password_file}: {e.strerror or e}") from None
        else:
            password = os.environ.get(self.password_env or "")
            if password is None:
                raise ValueError(f"environment variable {self.password_env} (password_env) is not set")
        try:
            self._private_key = read_keystore(self.keystore, password)
        except OSError as e:
            raise ValueError(f"keystore {self.keystore}: {e.strerror or e}") from None
        return self

    @property
    def private_key(self) -> bytes:
        return self._private_key
