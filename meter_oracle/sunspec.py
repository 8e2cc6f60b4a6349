"""SunSpec devices (inverters, batteries, EV chargers with a SunSpec meter) over Modbus TCP or
RTU through pymodbus. Identity: manufacturer:serial from the common model."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from decimal import Decimal

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from meter_oracle import sunspec_models as m
from meter_oracle.errors import FrameRefused
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame

log = logging.getLogger("meter_oracle.sunspec")


class SunSpecDriver:
    def __init__(self, url: str, *, unit: int = 1, timeout_s: float = 3.0, serial_options: dict | None = None) -> None:
        """url: tcp://host:port for Modbus TCP; otherwise Modbus RTU on a serial port, or behind a
        ser2net gateway as socket://host:port or rfc2217://host:port."""
        self._client: ModbusTcpClient | ModbusSerialClient
        if url.startswith("tcp://"):
            host, _, port = url.removeprefix("tcp://").rpartition(":")
            self._client = ModbusTcpClient(host, port=int(port), timeout=timeout_s)
        else:
            opts = {"baudrate": 9600, **(serial_options or {})}
            self._client = ModbusSerialClient(url, timeout=timeout_s, **opts)
        self.url = url
        self.unit = unit
        self._layout: tuple[int, int, int] | None = None  # (common start, model id, model start)

    def close(self) -> None:
        self._client.close()

    def read(self) -> MeterFrame:
        """One reading; FrameRefused if the device does not answer as a SunSpec meter/inverter."""
        if not self._client.connected and not self._client.connect():
            raise FrameRefused(f"cannot connect to Modbus device {self.url}")
        if self._layout is None:
            self._layout = self._discover()
        common_at, model, model_at = self._layout
        common = self._regs(common_at, m.COMMON_LEN)
        regs = self._regs(model_at, m.METER_LEN if model in m.METERS else m.INVERTER_LEN)
        return decode(model, common, regs)

    def results(self, stop: threading.Event, interval_s: float) -> Iterator[MeterFrame | Dropped]:
        while not stop.is_set():
            try:
                yield self.read()
            except FrameRefused as e:
                self._layout = None
                self._client.close()
                yield Dropped(e.reason, b"")
            stop.wait(interval_s)

    def _regs(self, address: int, count: int) -> list[int]:
        try:
            resp = self._client.read_holding_registers(address, count=count, device_id=self.unit)
        except ModbusException as e:
            raise FrameRefused(f"Modbus read of {count} registers at {address} failed: {e}") from None
        if resp.isError() or len(resp.registers) < count:
            raise FrameRefused(f"Modbus read of {count} registers at {address} failed: {resp}")
        return list(resp.registers[:count])

    def _discover(self) -> tuple[int, int, int]:
        for base in m.BASES:
            try:
                if tuple(self._regs(base, 2)) == m.SUNS:
                    break
            except FrameRefused:
                continue
        else:
            raise FrameRefused(f"no SunSpec marker 'SunS' at {', '.join(map(str, m.BASES))}")
        at, common_at = base + 2, None
        for _ in range(64):  # a device holds a handful of models
            model, length = self._regs(at, 2)
            if model == m.END_MODEL:
                break
            if model == m.COMMON and common_at is None:
                common_at = at + 2
            elif (model in m.METERS or model in m.INVERTERS) and common_at is not None:
                return common_at, model, at + 2
            at += 2 + length
        raise FrameRefused("SunSpec device has no common model followed by a meter (201-204) or inverter (101-103) model")


def decode(model: int, common: list[int], regs: list[int]) -> MeterFrame:
    """A reading from the common model's registers and a meter (201-204) or inverter (101-103)
    model's registers; FrameRefused when they do not make one."""
    if len(common) < m.COMMON_LEN:
        raise FrameRefused(f"SunSpec common model has {len(common)} registers, expected {m.COMMON_LEN}")
    ident = f"{_string(common, *m.MN)}:{_string(common, *m.SN)}"
    if ident.startswith(":") or ident.endswith(":"):
        raise FrameRefused(f"SunSpec common model lacks manufacturer or serial: {ident!r}")
    if model in m.METERS:
        _need(regs, m.METER_LEN, model)
        sf = _sf(regs[m.TOT_WH_SF], "TotWh_SF")
        import_wh = _scaled(_acc32(regs, m.TOT_WH_IMP), sf)
        export_wh = _scaled(_acc32(regs, m.TOT_WH_EXP), sf)
        power = _scaled(_int16(regs[m.METER_W]), _sf(regs[m.METER_W_SF], "W_SF"))
    elif model in m.INVERTERS:
        _need(regs, m.INVERTER_LEN, model)
        import_wh = Decimal(0)  # an inverter only produces
        export_wh = _scaled(_acc32(regs, m.INV_WH), _sf(regs[m.INV_WH_SF], "WH_SF"))
        power = -_scaled(_int16(regs[m.INV_W]), _sf(regs[m.INV_W_SF], "W_SF"))
    else:
        raise FrameRefused(f"SunSpec model {model} is neither a meter (201-204) nor an inverter (101-103)")
    raw = b"".join(v.to_bytes(2, "big") for v in (*common, *regs))
    return MeterFrame("sunspec", ident, import_wh, export_wh, raw, power_w=power, detail=f"SunSpec model {model}")


def _need(regs: list[int], n: int, model: int) -> None:
    if len(regs) < n:
        raise FrameRefused(f"SunSpec model {model} has {len(regs)} registers, expected {n}")


def _string(regs: list[int], offset: int, count: int) -> str:
    raw = b"".join(v.to_bytes(2, "big") for v in regs[offset : offset + count])
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()


def _acc32(regs: list[int], offset: int) -> int:
    return regs[offset] << 16 | regs[offset + 1]


def _int16(v: int) -> int:
    return v - 0x10000 if v & 0x8000 else v


def _sf(v: int, name: str) -> int:
    sf = _int16(v)
    if sf == m.SF_NOT_IMPLEMENTED or not -10 <= sf <= 10:
        raise FrameRefused(f"SunSpec scale factor {name} is {sf}: not implemented or out of range")
    return sf


def _scaled(value: int, sf: int) -> Decimal:
    return Decimal(value * 10**sf) if sf >= 0 else Decimal(value).scaleb(sf)
