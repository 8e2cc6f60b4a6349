"""A SunSpec device on a real Modbus server (pymodbus; Modbus TCP, or RTU framing over TCP): 'SunS' at 40000, the common model
(manufacturer, model, serial), then a meter model 203 (import/export registers, for batteries,
EV chargers, households) or an inverter model 103 (energy produced), then the end model.
Energy registers are refreshed from the register source on every read."""
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
                 model_name: str = "SIM-1", wh_scale: int = 0, host: str = "127.0.0.1", port: int = 0,
                 rtu: bool = False) -> None:
        """rtu: speak Modbus RTU framing over the TCP port, as an RS-485 device behind a ser2net
        gateway does (read it with the url socket://host:port)."""
        if model not in (203, 103):
            raise ValueError("the simulator offers meter model 203 or inverter model 103")
        self.source, self.model, self.wh_scale = source, model, wh_scale
        self.host = host
        self.port = port or _free_port(host)
        self.rtu = rtu
        common = [m.COMMON, m.COMMON_LEN] + _string(manufacturer, 16) + _string(model_name, 16) + [0] * 8 \
            + _string("1.0", 8) + _string(serial, 16) + [1, 0x8000]
        length = m.METER_LEN if model == 203 else m.INVERTER_LEN
        self._model_at = BASE + 2 + len(common) + 2  # first register of the model's points
        points = [0] * length
        if model == 203:
            points[m.METER_W_SF] = 0
            points[m.TOT_WH_SF] = wh_scale & 0xFFFF
        else:
            points[m.INV_W_SF] = 0
            points[m.INV_WH_SF] = wh_scale & 0xFFFF
        self._registers = list(m.SUNS) + common + [model, length] + points + [m.END_MODEL, 0]
        self._server: ModbusTcpServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

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
        step = Decimal(10) ** self.wh_scale
        imp_r = int((Decimal(imp) / step).to_integral_value(ROUND_FLOOR))
        exp_r = int((Decimal(exp) / step).to_integral_value(ROUND_FLOOR))
        at = self._model_at - start_address
        if self.model == 203:
            registers[at + m.TOT_WH_IMP : at + m.TOT_WH_IMP + 2] = _acc32(imp_r)
            registers[at + m.TOT_WH_EXP : at + m.TOT_WH_EXP + 2] = _acc32(exp_r)
        else:
            registers[at + m.INV_WH : at + m.INV_WH + 2] = _acc32(exp_r)
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
