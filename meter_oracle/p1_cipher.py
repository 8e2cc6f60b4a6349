"""Encrypted P1 ports (Luxembourg Smarty, Austrian Sagemcom T210-D and others): each telegram is
a DLMS general-glo-cipher APDU, AES-128-GCM with a 12-byte tag (security suite 0):

    DB | 08 | system title (8) | 82 | length (2) | security control (1) | invocation counter (4)
       | ciphertext | tag (12)

IV = system title || invocation counter; AAD = security control || authentication key. Framing
is by the APDU's own length (dsmr-parser's EncryptedTelegramBuffer reads it the same way, but
drops what it skips silently; this framer reports it). Decryption is dlms-cosem's."""
from __future__ import annotations

from dlms_cosem.exceptions import DecryptionError
from dlms_cosem.protocol.xdlms import GeneralGlobalCipher
from dsmr_parser import telegram_specifications as specs

from meter_oracle.errors import FrameRefused
from meter_oracle.framing import Dropped

TAG = GeneralGlobalCipher.TAG  # 0xDB
LONG_LENGTH = 0x82
HEADER = 2 + 8 + 3  # tag, title length, title, 82, length
MAX_FRAME = 16 * 1024
# Luxmetering's P1 specification fixes the authentication key of every Smarty (public).
SMARTY_AUTHENTICATION_KEY = bytes.fromhex(specs.MSN["authentication_key"])


def parse_key(text: str, name: str) -> bytes:
    """A 16-byte AES key written as 32 hex digits."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError(f"{name} is not hexadecimal") from None
    if len(key) != 16:
        raise ValueError(f"{name} has {len(key)} bytes, AES-128 needs 16 (32 hex digits)")
    return key


def decrypt(frame: bytes, key: bytes, authentication_key: bytes = SMARTY_AUTHENTICATION_KEY) -> bytes:
    """The plaintext telegram of one APDU; FrameRefused naming a wrong key or a tampered frame."""
    try:
        apdu = GeneralGlobalCipher.from_bytes(frame)
    except (ValueError, IndexError, KeyError) as e:
        raise FrameRefused(f"not a DLMS general-glo-cipher frame: {e}") from None
    control = apdu.security_control
    if not (control.encrypted and control.authenticated) or control.security_suite != 0:
        raise FrameRefused("encrypted P1 frame uses a security mode other than authenticated AES-GCM suite 0")
    try:
        return apdu.to_plain_apdu(key, authentication_key)
    except DecryptionError:
        raise FrameRefused("decryption failed: the GCM tag does not verify (wrong decryption or authentication key, "
                           f"or a tampered frame; system title {apdu.system_title.hex()}, "
                           f"invocation counter {apdu.invocation_counter})") from None


class CipherFramer:
    """Cuts an encrypted P1 stream into APDUs by their length; reports the bytes it skips. Each
    feed() stops after one frame, so that a frame that does not decrypt can be rescanned before
    the bytes after it are judged (call feed(b"") until it returns no frame)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._noise = bytearray()

    def feed(self, data: bytes) -> list[bytes | Dropped]:
        self._buf += data
        out: list[bytes | Dropped] = []
        while True:
            start = self._buf.find(TAG)
            if start == -1:
                self._skip(len(self._buf), out)
                break
            self._skip(start, out)
            if len(self._buf) < HEADER:
                break
            if self._buf[1] != 8 or self._buf[10] != LONG_LENGTH:
                self._skip(1, out)  # a DB byte that does not begin an APDU
                continue
            total = HEADER + int.from_bytes(self._buf[11:13], "big")
            if total > MAX_FRAME:
                self._skip(1, out)
                continue
            # the next APDU of the same meter (same system title) inside this one's span: this
            # one's length is damaged or it was cut short
            nxt = self._buf.find(bytes([TAG, 8]) + self._buf[2:10] + bytes([LONG_LENGTH]), 1, total)
            if nxt != -1:
                self._flush_noise(out)
                out.append(Dropped("encrypted P1 frame truncated: the next frame began inside it", bytes(self._buf[:nxt])))
                del self._buf[:nxt]
                continue
            if len(self._buf) < total:
                break
            self._flush_noise(out)
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]
            return out
        if len(self._noise) > MAX_FRAME:
            self._flush_noise(out)
        return out

    def rescan(self, frame: bytes) -> None:
        """A framed APDU that did not decrypt: look for a frame start inside it again (its
        length may have been damaged); its first byte is noise now."""
        self._noise += frame[:1]
        self._buf[:0] = frame[1:]

    def _skip(self, n: int, out: list) -> None:
        self._noise += self._buf[:n]
        del self._buf[:n]

    def _flush_noise(self, out: list) -> None:
        if self._noise.strip(b"\x00"):
            out.append(Dropped(f"{len(self._noise)} bytes outside any encrypted P1 frame", bytes(self._noise)))
        self._noise.clear()
