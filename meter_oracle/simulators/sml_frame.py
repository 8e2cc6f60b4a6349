"""SML 1.04 encoder: OpenResponse, GetListResponse (server id, 1.8.0, 2.8.0, 16.7.0) and
CloseResponse, each with its message CRC, wrapped in the transport layer (escaping of
1b1b1b1b, padding to 4 bytes, end sequence, frame CRC16/X.25)."""
from __future__ import annotations

import itertools
from decimal import ROUND_FLOOR, Decimal

import smllib.crc
from smllib.crc import x25  # message CRCs are X.25 whatever the frame CRC

ESC = b"\x1b\x1b\x1b\x1b"
_txn = itertools.count(1)


def _tl(kind: int, length: int) -> bytes:
    """Type-length field; length counts the TL bytes themselves for octet strings and numbers."""
    if length < 16:
        return bytes([kind | length])
    if length + 1 < 256:
        total = length + 1  # a two-byte TL
        return bytes([0x80 | kind | (total >> 4), total & 0x0F])
    raise ValueError("SML field too long for this encoder")


def octets(data: bytes) -> bytes:
    return _tl(0x00, len(data) + 1) + data


def unsigned(value: int, size: int) -> bytes:
    return bytes([0x60 | (size + 1)]) + value.to_bytes(size, "big")


def signed(value: int, size: int) -> bytes:
    return bytes([0x50 | (size + 1)]) + value.to_bytes(size, "big", signed=True)


def lst(*items: bytes) -> bytes:
    return bytes([0x70 | len(items)]) + b"".join(items)


NONE = b"\x01"


def _message(body_tag: int, body: bytes) -> bytes:
    """A message is a list of 6: transaction id, group, abort-on-error, body, CRC, end byte;
    the CRC covers everything before it."""
    content = bytes([0x76]) + octets(next(_txn).to_bytes(4, "big")) + unsigned(0, 1) + unsigned(0, 1) \
        + lst(unsigned(body_tag, 2), body)
    return content + unsigned(x25.get_crc(content), 2) + b"\x00"


def _entry(obis: bytes, unit: int | None, scaler: int | None, value: bytes) -> bytes:
    return lst(octets(obis), NONE, NONE,
               unsigned(unit, 1) if unit is not None else NONE,
               signed(scaler, 1) if scaler is not None else NONE,
               value, NONE)


def entry(obis_hex: str, unit: int | None, scaler: int | None, value: bytes) -> bytes:
    """One val_list entry (obis, status, time, unit, scaler, value, signature), for extra entries."""
    return _entry(bytes.fromhex(obis_hex), unit, scaler, value)


def build_frame(server_id: bytes, import_wh: Decimal | None, export_wh: Decimal | None, *,
                power_w: Decimal | None = None, scaler: int = -1, extra: tuple[bytes, ...] = (),
                crc: str = "x25") -> bytes:
    """One transport frame. Registers in Wh with 10**scaler resolution (unit code 30); a register
    given as None is left out (a generator's meter has no 1.8.0)."""
    step = Decimal(10) ** scaler
    entries = [_entry(bytes.fromhex("0100600100ff"), None, None, octets(server_id))]
    for obis, wh in (("0100010800ff", import_wh), ("0100020800ff", export_wh)):
        if wh is not None:
            entries.append(_entry(bytes.fromhex(obis), 30, scaler, unsigned(int((wh / step).to_integral_value(ROUND_FLOOR)), 8)))
    entries += extra
    if power_w is not None:
        entries.append(_entry(bytes.fromhex("0100100700ff"), 27, 0, signed(int(power_w), 4)))
    payload = (
        _message(0x0101, lst(NONE, NONE, octets(b"\x00\x00\x00\x01"), octets(server_id), NONE, NONE))
        + _message(0x0701, lst(NONE, octets(server_id), octets(bytes.fromhex("0100620affff")), NONE,
                               lst(*entries), NONE, NONE))
        + _message(0x0201, lst(NONE))
    )
    return wrap_transport(payload, crc=crc)


def wrap_transport(payload: bytes, *, crc: str = "x25", pad: bool = True) -> bytes:
    """pad=False leaves the end sequence off the 4-byte grid (a misaligned end marker)."""
    # escapes sit on 4-byte boundaries (the frame's alignment), as meters send them
    escaped = b"".join(payload[i : i + 4] * (2 if payload[i : i + 4] == ESC else 1) for i in range(0, len(payload), 4))
    padding = -len(escaped) % 4 if pad else 0
    body = ESC + b"\x01\x01\x01\x01" + escaped + b"\x00" * padding + ESC + bytes([0x1A, padding])
    return body + getattr(smllib.crc, crc).get_crc(body).to_bytes(2, "big")
