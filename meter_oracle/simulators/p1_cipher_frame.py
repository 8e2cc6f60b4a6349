"""Encrypted P1 encoder: a plaintext telegram wrapped as a DLMS general-glo-cipher APDU with
cryptography's AES-GCM (tag truncated to the 12 bytes DLMS uses), as a Smarty or Sagemcom sends."""
from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meter_oracle.p1_cipher import LONG_LENGTH, SMARTY_AUTHENTICATION_KEY, TAG

SECURITY_CONTROL = 0x30  # suite 0, authenticated and encrypted


def encrypt_telegram(telegram: bytes, key: bytes, *, system_title: bytes = b"SAGxxxxx", invocation_counter: int = 1,
                     authentication_key: bytes = SMARTY_AUTHENTICATION_KEY) -> bytes:
    iv = system_title + invocation_counter.to_bytes(4, "big")
    sealed = AESGCM(key).encrypt(iv, telegram, bytes([SECURITY_CONTROL]) + authentication_key)
    body = bytes([SECURITY_CONTROL]) + invocation_counter.to_bytes(4, "big") + sealed[:-4]  # 12-byte tag
    return bytes([TAG, len(system_title)]) + system_title + bytes([LONG_LENGTH]) + len(body).to_bytes(2, "big") + body
