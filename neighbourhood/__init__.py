"""Neighbourhood microgrid: a local double-auction market, household devices and their agents,
the households' meter registers, and a pure simulation driver (`python -m neighbourhood`)."""
from .household import Household, MeterRegister
from .market import Clearing, Fill, GridTariff, InvalidOrder, Order, Side, clear
from .scenario import DEFAULT_START, DEFAULT_TARIFF, build_households
from .simulation import PeriodResult, Simulation, SimulationResult, Summary

__all__ = [
    "Clearing", "Fill", "GridTariff", "InvalidOrder", "Order", "Side", "clear",
    "Household", "MeterRegister", "DEFAULT_START", "DEFAULT_TARIFF", "build_households",
    "PeriodResult", "Simulation", "SimulationResult", "Summary",
]
