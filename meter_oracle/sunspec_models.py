"""SunSpec register layout (Modbus holding registers) used by the driver and the simulator.

Common model 1: Mn (16 registers), Md (16), Opt (8), Vr (8), SN (16), DA, Pad.
Meters 201-204 (integer + scale factor): W at 16, W_SF 20, TotWhExp acc32 at 36, TotWhImp acc32
at 44, TotWh_SF at 52; length 105. Inverters 101-103: W 12, W_SF 13, WH acc32 at 22, WH_SF 24;
length 50. Offsets count from the first register after the model's ID and L.
"""
from __future__ import annotations

SUNS = (0x5375, 0x6E53)  # "SunS"
BASES = (40000, 0, 50000)
END_MODEL = 0xFFFF
COMMON = 1
COMMON_LEN = 66
MN, SN = (0, 16), (48, 16)
METERS = (201, 202, 203, 204)
METER_LEN = 105
METER_W, METER_W_SF, TOT_WH_EXP, TOT_WH_IMP, TOT_WH_SF = 16, 20, 36, 44, 52
INVERTERS = (101, 102, 103)
INVERTER_LEN = 50
INV_W, INV_W_SF, INV_WH, INV_WH_SF = 12, 13, 22, 24
SF_NOT_IMPLEMENTED = -0x8000
