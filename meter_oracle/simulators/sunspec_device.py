"""A SunSpec device on a real Modbus server (pymodbus; Modbus TCP, or RTU framing over TCP): 'SunS' at
40000, the common model (manufacturer, model, serial), then one or more energy models laid out
from pysunspec2's definitions (meters 201-204 / 211-214 / 220, inverters 101-103 / 111-113, DER
701), then the end model. Points the simulator does not drive read as "not implemented"; energy
registers are refreshed from the register source on every read."""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from decimal import ROUND_FLOOR, Decimal

from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from meter_oracle import sunspec_models as m
from meter_oracle.simulators import RegisterSource

BASE = 40000


def _string(text: str, registers: int) -> list[int]:
    raw = text.encode("utf-8")[: registers * 2].ljust(registers * 2, b"\x00")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def _acc32(value: int) -> list[int]:
    value &= 0xFFFFFFFF
    return [value >> 16, value & 0xFFFF]


class SunSpecServer:
    def __init__(self, source: RegisterSource, *, manufacturer: str, serial: str, model: int = 203,
                 models: tuple[int, ...] | None = None, model_name: str = "SIM-1", wh_scale: int = 0,
                 host: str = "127.0.0.1", port: int = 0, rtu: bool = False) -> None:
        """models: the energy models to serve after the common model (default: just `model`), laid
        out from pysunspec2's definitions; every one shows the source's registers. rtu: speak
        Modbus RTU framing over the TCP port, as an RS-485 device behind a ser2net gateway does
        (read it with the url socket://host:port)."""
        self.models = tuple(models or (model,))
        unknown = [x for x in self.models if x not in m.ENERGY]
        if unknown:
            raise ValueError(f"the simulator serves energy models {sorted(m.ENERGY)}, not {unknown}")
        self.source, self.wh_scale = source, wh_scale
        self.host = host
        self.port = port or _free_port(host)
        self.rtu = rtu
        common = m.layout(m.COMMON)
        image = [0] * (common.length + 2)
        self._put(image, common, "ID", m.COMMON)
        self._put(image, common, "L", common.length)
        for name, text in (("Mn", manufacturer), ("Md", model_name), ("Vr", "1.0"), ("SN", serial)):
            point = common.points[name]
            image[point.offset : point.offset + point.size] = _string(text, point.size)
        self._put(image, common, "DA", 1)
        self._registers = list(m.SUNS) + image
        self._energy_at: list[tuple[int, m.Layout]] = []  # (address of the model's ID, layout)
        for model_id in self.models:
            lay = m.layout(model_id)
            block = [0] * (lay.length + 2)
            self._put(block, lay, "ID", model_id)
            self._put(block, lay, "L", lay.length)
            for point in lay.points.values():
                if point.type == "sunssf":
                    self._put(block, lay, point.name, 0)
                elif point.name not in ("ID", "L") and point.type in m.NOT_IMPLEMENTED:
                    self._put(block, lay, point.name, m.NOT_IMPLEMENTED[point.type])
                elif point.type == "float32":
                    self._put(block, lay, point.name, float("nan"))
            energy = m.ENERGY[model_id]
            sf_names = {lay.points[n].sf for n in (energy.import_point, energy.export_point) if n and lay.points[n].sf}
            for sf in sf_names:
                self._put(block, lay, sf, wh_scale & 0xFFFF)
            power = lay.points[energy.power_point]
            self._put(block, lay, power.name, 0.0 if power.type == "float32" else 0)
            self._energy_at.append((BASE + len(self._registers), lay))
            self._registers += block
        self._registers += [m.END_MODEL, 0]
        self._server: ModbusTcpServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    @staticmethod
    def _put(block: list[int], lay: m.Layout, name: str | None, value) -> None:
        assert name is not None, "a model point the layout names"
        point = lay.points[name]
        block[point.offset : point.offset + point.size] = m.encode(point, value)

    @property
    def url(self) -> str:
        return f"{'socket' if self.rtu else 'tcp'}://{self.host}:{self.port}"

    async def _serve(self) -> None:
        device = SimDevice(id=0, simdata=[SimData(BASE, values=self._registers, datatype=DataType.REGISTERS)],
                           action=self._refresh)
        framer = FramerType.RTU if self.rtu else FramerType.SOCKET
        self._server = ModbusTcpServer(device, address=(self.host, self.port), framer=framer)  # needs the running loop
        await self._server.serve_forever()

    async def _refresh(self, function_code, start_address, address, count, registers, set_values):
        if set_values is not None:
            return None
        imp, exp = self.source.registers(time.time())
        for at, lay in self._energy_at:
            energy = m.ENERGY[lay.id]
            for name, wh in ((energy.import_point, imp), (energy.export_point, exp)):
                if name is None:
                    continue
                point = lay.points[name]
                if point.type == "float32":
                    value = float(wh)
                else:
                    step = Decimal(10) ** self.wh_scale
                    value = int((Decimal(wh) / step).to_integral_value(ROUND_FLOOR))
                first = at - start_address + point.offset
                if 0 <= first and first + point.size <= len(registers):
                    registers[first : first + point.size] = m.encode(point, value)
        return None

    def start(self) -> SunSpecServer:
        self._thread.start()
        deadline = time.time() + 10
        while time.time() < deadline:  # wait until the port listens
            with socket.socket() as s:
                if s.connect_ex((self.host, self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"SunSpec simulator did not start listening on {self.url}")

    def stop(self) -> None:
        assert self._server is not None, "stop() before start()"
        asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(timeout=10)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> SunSpecServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
