"""DSMR P1 telegram encoder: the lines a real meter sends, CRC16 (ARC, as P1 specifies)
over '/' .. '!' for the versions that have one."""
from __future__ import annotations

import time
from decimal import ROUND_FLOOR, Decimal


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _kwh(wh: Decimal) -> str:
    kwh = (wh / 1000).quantize(Decimal("0.001"), rounding=ROUND_FLOOR)
    return f"{kwh:010.3f}"


def _stamp(t: float) -> str:
    # Dutch meters send local time with S (summer, UTC+2) / W (winter, UTC+1); we send winter time.
    return time.strftime("%y%m%d%H%M%S", time.gmtime(t + 3600)) + "W"


def build_telegram(identity: str, import_wh: Decimal, export_wh: Decimal, now: float, *, version: str = "5",
                   power_w: Decimal | None = None) -> bytes:
    """One telegram; import/export go to tariff 1 (1.8.1/2.8.1) with tariff 2 at zero, as the
    energy registers of a one-tariff day. Resolution 1 Wh (kWh with 3 decimals)."""
    power_kw = (power_w or Decimal(0)) / 1000
    lines = []
    if version in ("2.2", "3"):
        lines += ["/ISk5\\2ME382-1003", "", f"0-0:96.1.1({identity})"]
    elif version == "belgium":
        lines += ["/FLU5\\253769484_A", "", "0-0:96.1.4(50217)", f"0-0:96.1.1({identity})", f"0-0:1.0.0({_stamp(now)})"]
    else:
        p1 = {"4": "42", "5": "50", "luxembourg": "42"}[version]
        lines += ["/ISk5\\2MT382-1000", "", f"1-3:0.2.8({p1})", f"0-0:1.0.0({_stamp(now)})", f"0-0:96.1.1({identity})"]
        if version == "luxembourg":
            lines.append(f"0-0:42.0.0({identity})")
    lines += [
        f"1-0:1.8.1({_kwh(import_wh)}*kWh)",
        f"1-0:1.8.2({_kwh(Decimal(0))}*kWh)",
        f"1-0:2.8.1({_kwh(export_wh)}*kWh)",
        f"1-0:2.8.2({_kwh(Decimal(0))}*kWh)",
        "0-0:96.14.0(0001)",
        f"1-0:1.7.0({max(power_kw, Decimal(0)):06.3f}*kW)",
        f"1-0:2.7.0({max(-power_kw, Decimal(0)):06.3f}*kW)",
    ]
    body = ("\r\n".join(lines) + "\r\n!").encode("ascii")
    if version in ("2.2", "3"):
        return body + b"\r\n"
    return body + f"{crc16(body):04X}\r\n".encode("ascii")
