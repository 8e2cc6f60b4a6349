"""SunSpec devices (inverters, batteries, EV chargers, meters) over Modbus TCP or RTU through
pymodbus, with the register layouts of pysunspec2's model definitions (sunspec_models).
Identity: manufacturer:serial from the common model. Discovery walks the model chain after
'SunS'; the reading comes from the configured model, else the first meter (201-204, 211-214,
220: the grid connection point), else the DER AC measurement 701, else an inverter."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from meter_oracle import sunspec_models as m
from meter_oracle.errors import FrameRefused
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame

log = logging.getLogger("meter_oracle.sunspec")
MAX_READ = 125  # registers per Modbus read


@dataclass(frozen=True)
class ModelEntry:
    id: int
    address: int  # of the model's ID register
    length: int  # L


def _preference(model_id: int) -> int:
    return 0 if 200 <= model_id < 300 else 1 if model_id == 701 else 2


class SunSpecDriver:
    def __init__(self, url: str, *, unit: int = 1, timeout_s: float = 3.0, serial_options: dict | None = None,
                 model: int | None = None) -> None:
        """url: tcp://host:port for Modbus TCP; otherwise Modbus RTU on a serial port, or behind a
        ser2net gateway as socket://host:port or rfc2217://host:port. model: read this model."""
        self._client: ModbusTcpClient | ModbusSerialClient
        if url.startswith("tcp://"):
            host, _, port = url.removeprefix("tcp://").rpartition(":")
            self._client = ModbusTcpClient(host, port=int(port), timeout=timeout_s)
        else:
            opts = {"baudrate": 9600, **(serial_options or {})}
            self._client = ModbusSerialClient(url, timeout=timeout_s, **opts)
        self.url = url
        self.unit = unit
        self.model = model
        self._chain: list[ModelEntry] | None = None

    def close(self) -> None:
        self._client.close()

    def _connect(self) -> None:
        if not self._client.connected and not self._client.connect():
            raise FrameRefused(f"cannot connect to Modbus device {self.url}")

    def models(self) -> list[ModelEntry]:
        """Every model the device has, in its order (discovery)."""
        self._connect()
        if self._chain is None:
            self._chain = self._discover()
        return self._chain

    def read(self) -> MeterFrame:
        """One reading; FrameRefused if the device does not answer as a SunSpec energy device."""
        chain = self.models()
        common = next((e for e in chain if e.id == m.COMMON), None)
        energy = sorted((e for e in chain if e.id in m.ENERGY), key=lambda e: _preference(e.id))
        if self.model is not None:
            energy = [e for e in energy if e.id == self.model]
        if common is None or not energy:
            want = f"model {self.model}" if self.model is not None else \
                f"an energy model ({', '.join(map(str, m.ENERGY))})"
            raise FrameRefused(f"SunSpec device has models {[e.id for e in chain]}: no common model 1 or no {want}")
        chosen = energy[0]
        return decode(chosen.id, self._regs(common.address, common.length + 2),
                      self._regs(chosen.address, chosen.length + 2))

    def results(self, stop: threading.Event, interval_s: float) -> Iterator[MeterFrame | Dropped]:
        while not stop.is_set():
            try:
                yield self.read()
            except FrameRefused as e:
                self._chain = None
                self._client.close()
                yield Dropped(e.reason, b"")
            stop.wait(interval_s)

    def _regs(self, address: int, count: int) -> list[int]:
        out: list[int] = []
        for at in range(address, address + count, MAX_READ):
            n = min(MAX_READ, address + count - at)
            try:
                resp = self._client.read_holding_registers(at, count=n, device_id=self.unit)
            except ModbusException as e:
                raise FrameRefused(f"Modbus read of {n} registers at {at} failed: {e}") from None
            if resp.isError() or len(resp.registers) < n:
                raise FrameRefused(f"Modbus read of {n} registers at {at} failed: {resp}")
            out += resp.registers[:n]
        return out

    def _discover(self) -> list[ModelEntry]:
        for base in m.BASES:
            try:
                if tuple(self._regs(base, 2)) == m.SUNS:
                    break
            except FrameRefused:
                continue
        else:
            raise FrameRefused(f"no SunSpec marker 'SunS' at {', '.join(map(str, m.BASES))}")
        at, chain = base + 2, list[ModelEntry]()
        for _ in range(64):  # a device holds a handful of models
            model, length = self._regs(at, 2)
            if model == m.END_MODEL:
                return chain
            chain.append(ModelEntry(model, at, length))
            at += 2 + length
        raise FrameRefused("SunSpec model chain has no end model within 64 models")


def decode(model: int, common: list[int], regs: list[int]) -> MeterFrame:
    """A reading from the common model's registers and an energy model's registers (both from
    their ID register on); FrameRefused when they do not make one."""
    c = m.layout(m.COMMON)
    if len(common) < c.length + 2:
        raise FrameRefused(f"SunSpec common model has {len(common)} registers, expected {c.length + 2}")
    ident = f"{_string(common, c.points['Mn'])}:{_string(common, c.points['SN'])}"
    if ident.startswith(":") or ident.endswith(":"):
        raise FrameRefused(f"SunSpec common model lacks manufacturer or serial: {ident!r}")
    if model not in m.ENERGY:
        raise FrameRefused(f"SunSpec model {model} has no energy registers the oracle reads "
                           f"(models {', '.join(map(str, m.ENERGY))})")
    lay, points = m.layout(model), m.ENERGY[model]
    if len(regs) < lay.length + 2:
        raise FrameRefused(f"SunSpec model {model} has {len(regs)} registers, expected {lay.length + 2}")
    export_wh = _energy(regs, lay, points.export_point)
    import_wh = _energy(regs, lay, points.import_point) if points.import_point else Decimal(0)
    power = _number(regs, lay, points.power_point, required=False)
    raw = b"".join(v.to_bytes(2, "big") for v in (*common, *regs))
    return MeterFrame("sunspec", ident, import_wh, export_wh, raw,
                      power_w=None if power is None else power * points.power_sign,
                      detail=f"SunSpec model {model} ({lay.name})")


def _energy(regs: list[int], lay: m.Layout, name: str) -> Decimal:
    value = _number(regs, lay, name, required=True)
    assert value is not None
    if value < 0:
        raise FrameRefused(f"SunSpec {name} is {value} Wh: an energy register is not negative")
    return value


def _number(regs: list[int], lay: m.Layout, name: str, required: bool) -> Decimal | None:
    point = lay.points[name]
    if m.is_not_implemented(regs, point):
        if required:
            raise FrameRefused(f"SunSpec {name} of model {lay.id} is not implemented")
        return None
    if point.type == "float32":
        value = m.float32(regs, point)
        if not (value == value and abs(value) != float("inf")):
            raise FrameRefused(f"SunSpec {name} is not a finite number")
        return Decimal(m.shortest_float32(value))
    value = m.integer(regs, point)
    if point.sf is None:
        return Decimal(value)
    sf = m.integer(regs, lay.points[point.sf])
    if sf == -0x8000 or not -10 <= sf <= 10:
        if not required:
            return None
        raise FrameRefused(f"SunSpec scale factor {point.sf} is {sf}: not implemented or out of range")
    return Decimal(value * 10**sf) if sf >= 0 else Decimal(value).scaleb(sf)


def _string(regs: list[int], point: m.Point) -> str:
    raw = b"".join(v.to_bytes(2, "big") for v in regs[point.offset : point.offset + point.size])
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
