"""The neighbourhood demo: a microgrid of households settled end to end on a local chain.

Households (neighbourhood/) trade in a double auction before each period and their devices
follow; simulated meters serve the resulting registers over their real protocols (DSMR P1 over
TCP, SML over TCP, SunSpec over Modbus TCP); two meter oracles read, check and sign them and
deliver to three settlement nodes (quorum 2 of 3); the nodes commit one batch per period and
balance group, wait out the challenge window and finalize; the grids roll up (the microgrid
"sonnenweg" is one member of the grid "district"); at the end the audit recomputes everything
from chain events and an archive export and writes the report.

Time is accelerated: each 15-minute market period of the simulated day lasts `period_seconds`
of wall time, which is also the ledger's period length, so every component runs on the real
clock. The meters' plausibility limit is scaled by the same factor.
"""
from __future__ import annotations

import secrets
import shutil
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account import Account
from tqdm import tqdm

from meter_oracle.simulators.stream_server import DsmrMeter, SmlMeter, TcpFrameServer
from meter_oracle.simulators.sunspec_device import SunSpecServer
from neighbourhood.household import MeterRegister
from neighbourhood.scenario import DEFAULT_START, DEFAULT_TARIFF, build_households
from neighbourhood.simulation import Simulation, summarize
from rust_core.wire import PROTOCOLS
from scripts._audit import Provenance, audit, export_archive, read_chain, read_export, write_findings
from scripts._deployment import (
    ApeTransactor,
    Deployment,
    GridSpec,
    MeterRow,
    NetworkSpec,
    deploy,
    register,
    write_meter_csv,
)
from scripts._processes import ManagedProcess, start_nodes, start_oracle
from scripts._report import write_report
from scripts._withhold import withhold_attack

SIM_PERIOD_S = 900
MICROGRID, DISTRICT = "sonnenweg", "district"
BOUNDARY, SUBSTATION = "sonnenweg-boundary", "district-substation"
LINE_LOSS = Decimal("0.01")  # of the energy drawn by the households, lost in the microgrid's lines
REGISTRATION_LEAD_S = 8.0  # registering the meters takes a few seconds of transactions


@dataclass(frozen=True)
class DemoOptions:
    households: int = 24
    periods: int = 96
    period_seconds: int = 3
    challenge_window_seconds: int = 4
    groups: int = 3
    seed: int = 1
    start_hour: int = 0  # of the simulated day (UTC)
    workdir: Path = Path("var/demo")
    withhold: bool = False  # after the day, a colluding pair submits a batch and withholds its leaves


class AcceleratedClock:
    """Wall time -> simulated time: real period k of the ledger is simulated period k of the day.
    Until the day is scheduled (`start_at`), the meters stand at the day's first instant."""

    def __init__(self, sim_start: int, period_seconds: int) -> None:
        self.sim_start, self.factor = sim_start, SIM_PERIOD_S / period_seconds
        self.real_start = float("inf")

    def start_at(self, real_start: float) -> None:
        self.real_start = real_start

    def sim(self, now: float) -> float:
        return self.sim_start + max(0.0, now - self.real_start) * self.factor


class SimulatedRegisters:
    """A meter's register source for the protocol simulators, on the demo's accelerated clock."""

    def __init__(self, meter: MeterRegister, clock: AcceleratedClock) -> None:
        self.meter, self.clock = meter, clock

    def registers(self, now: float) -> tuple[Decimal, Decimal]:
        return self.meter.registers(self.clock.sim(now))


@dataclass
class SimMeter:
    label: str  # scheme:identity
    group: str
    kind: str
    register: MeterRegister
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    server: Any = None  # the protocol simulator serving this meter
    device_url: str = ""


def _meter_label(protocol: str, n: int) -> tuple[str, bytes | None]:
    """(scheme:identity, SML server id) of the n-th simulated meter of a protocol."""
    if protocol == "dsmr":  # the equipment id is sent hex-encoded ASCII, as Dutch meters do
        return "dsmr:" + f"SIM{n:011d}".encode().hex().upper(), None
    if protocol == "sml":
        server_id = bytes.fromhex("0a01454d4800") + n.to_bytes(4, "big")
        return "sml:" + server_id.hex(), server_id
    return f"sunspec:SimInverters:SN{n:06d}", None


CONFIRMATIONS_ON_A_REAL_CHAIN = 2


class NeighbourhoodDemo:
    def __init__(self, project, chain, test_accounts, options: DemoOptions, echo=print) -> None:
        """test_accounts: the local chain's funded accounts (admin, then three operators)."""
        self.project, self.chain, self.accounts, self.o, self.echo = project, chain, test_accounts, options, echo
        self.work = options.workdir.resolve()
        self.processes: list[ManagedProcess] = []
        self.meters: list[SimMeter] = []
        # anvil (31337) never reorganises; any other chain (the Clique network) may replace its
        # tip: the nodes act, the day counts and the audit reads only 2 blocks deep
        self.confirmations = 0 if chain.chain_id == 31337 else CONFIRMATIONS_ON_A_REAL_CHAIN

    # -- set-up -------------------------------------------------------------------------
    def run(self) -> int:
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        try:
            return self._run()
        finally:
            self._stop_all()

    def _run(self) -> int:
        o = self.o
        admin = self.accounts[0]
        operators = [self.accounts[i] for i in (1, 2, 3)]
        group_names = [f"{MICROGRID}-{chr(ord('a') + i)}" for i in range(o.groups)]
        spec = NetworkSpec(
            o.period_seconds, o.challenge_window_seconds, 2, tuple(a.address for a in operators), (admin.address,),
            (GridSpec(MICROGRID, tuple(group_names), (), BOUNDARY, group_names[0], 200),
             GridSpec(DISTRICT, (), (MICROGRID,), SUBSTATION, SUBSTATION, 200)),
        )
        t0 = time.time()
        dep = deploy(ApeTransactor(admin), spec)
        dep.save(self.work / "deployment.json")
        self.echo(f"deployed on chain {dep.chain_id}: registry {dep.registry}, ledger {dep.ledger}, "
                  f"grids {', '.join(f'{n} {a}' for n, a in dep.grids.items())}")

        sim_start = DEFAULT_START + o.start_hour * 3600
        households = build_households(o.households, o.seed, sim_start, o.periods)
        simulation = Simulation(households, DEFAULT_TARIFF, sim_start)
        boundary = MeterRegister(sim_start, SIM_PERIOD_S, 5_000_000_000, 1_000_000_000)
        substation = MeterRegister(sim_start, SIM_PERIOD_S, 90_000_000_000, 20_000_000_000)
        clock = AcceleratedClock(sim_start, o.period_seconds)
        counters = {p: 0 for p in PROTOCOLS}
        for i, h in enumerate(households):
            protocol = "sunspec" if h.name == "miner" else PROTOCOLS[i % 2]  # households: DSMR and SML
            counters[protocol] += 1
            label, _ = _meter_label(protocol, counters[protocol])
            kind = "consumption" if h.name == "miner" else "prosumer"
            self.meters.append(SimMeter(label, group_names[i % o.groups], kind, h.meter))
        for register_, group, n in ((boundary, BOUNDARY, 90), (substation, SUBSTATION, 91)):
            self.meters.append(SimMeter(_meter_label("sml", n)[0], group, "boundary", register_))

        self._start_simulators(clock)
        nodes = self._start_nodes(dep, operators)
        self._start_oracles(dep, nodes)
        # The day starts a few seconds after the meters are registered; readings from before
        # their first period are refused by the nodes, as they would be for any meter.
        first_period = -(-(time.time() + REGISTRATION_LEAD_S) // o.period_seconds)
        first_period = int(first_period)
        # the baseline is the register as the meter shows it (whole Wh: DSMR and SunSpec resolve no finer)
        rows = [MeterRow(m.label, Account.from_key(m.key).address, m.kind, m.group, first_period,
                         *whole_wh(m.register.totals_mwh)) for m in self.meters]
        write_meter_csv(self.work / "meters.csv", rows)
        register(ApeTransactor(admin), dep, rows)
        clock.start_at(first_period * o.period_seconds)
        self.echo(f"{len(self.meters)} meters served and registered, 3 nodes and 2 oracles running "
                  f"({time.time() - t0:.0f} s); the day starts at period {first_period}")

        settle_from = self.chain.blocks.head.number + 1
        settled = self._run_day(simulation, boundary, substation, first_period, dep)
        withheld = withhold_attack(self.project, self.chain, dep, operators[:2], self.echo) if o.withhold else None
        summary = summarize(simulation.history)
        for p in self.processes:
            p.stop()
        verdict, report = self._audit(dep)
        gas = self._gas_spent(settle_from)
        self.echo("")
        self.echo("== summary ==")
        self.echo(f"periods settled        {settled} of {o.periods} (final and rolled up)")
        self.echo(f"energy traded locally  {summary.traded_locally_mwh / 1e6:.1f} kWh")
        self.echo(f"self-sufficiency       {summary.self_sufficiency:.1%}")
        self.echo(f"cost with the market   EUR {summary.market_cost_eur:.2f} "
                  f"(flat tariff EUR {summary.flat_tariff_cost_eur:.2f}, saved EUR {summary.savings_eur:.2f})")
        self.echo(f"gas spent settling     {gas:,} ({gas / max(1, settled):,.0f} per period: "
                  f"{len(dep.groups)} batches submitted and finalized, {len(dep.grids)} roll-ups)")
        if withheld is not None:
            self.echo(f"withheld batch         period {withheld.period}: "
                      + (f"rejected (reason {withheld.reason})" if withheld.reason else "NOT rejected"))
        self.echo(f"audit                  {verdict}")
        self.echo(f"report                 {report}")
        attack_defeated = withheld is None or withheld.reason == 12
        return 0 if verdict == "PASS" and settled == o.periods and attack_defeated else 1

    def _start_simulators(self, clock: AcceleratedClock) -> None:
        interval = max(0.25, self.o.period_seconds / 4)
        for m in self.meters:
            scheme, _, identity = m.label.partition(":")
            source = SimulatedRegisters(m.register, clock)
            if scheme == "dsmr":
                m.server = TcpFrameServer(DsmrMeter(identity, source), interval_s=interval).start()
                m.device_url = m.server.url
            elif scheme == "sml":
                m.server = TcpFrameServer(SmlMeter(bytes.fromhex(identity), source), interval_s=interval).start()
                m.device_url = m.server.url
            else:
                manufacturer, _, serial = identity.partition(":")
                m.server = SunSpecServer(source, manufacturer=manufacturer, serial=serial).start()
                m.device_url = f"tcp://{m.server.host}:{m.server.port}"

    def _start_nodes(self, dep: Deployment, operators) -> list[str]:
        started = start_nodes(self.work, self.chain.provider.uri, self.work / "deployment.json",
                              [op.private_key for op in operators],
                              grace_seconds=max(0.5, self.o.period_seconds / 3), takeover_seconds=self.o.period_seconds,
                              confirmations=self.confirmations)
        self.processes += [proc for proc, _ in started]
        return [url for _, url in started]

    def _start_oracles(self, dep: Deployment, nodes: list[str]) -> None:
        # one oracle for the households' meters, one for the grid operator's boundary meters
        factor = SIM_PERIOD_S / self.o.period_seconds
        interval = max(0.25, self.o.period_seconds / 4)
        for name, boundary in (("oracle-households", False), ("oracle-boundary", True)):
            meters = [{"label": m.label, "key": m.key, "url": m.device_url, "interval_s": interval,
                       # the plausibility limit is scaled by the time acceleration
                       "max_power_w": int((500_000 if boundary else 60_000) * factor)}
                      for m in self.meters if (m.kind == "boundary") == boundary]
            self.processes.append(start_oracle(self.work, name, deployment=self.work / "deployment.json",
                                               max_skew_s=30, nodes=nodes, meters=meters))

    # -- the day ------------------------------------------------------------------------
    def _run_day(self, simulation: Simulation, boundary: MeterRegister, substation: MeterRegister,
                 first_period: int, dep: Deployment) -> int:
        """Steps the market just before each period starts; counts a period settled once the
        nodes have finalized every group's batch and rolled it up both grids."""
        o = self.o
        outer = self.project.Grid.at(dep.grids[DISTRICT])  # rolled up after the microgrid it contains
        settled = 0
        bar = tqdm(total=o.periods, unit="period", desc="day", dynamic_ncols=True)
        for k in range(o.periods + 60):
            if k < o.periods:
                self._wait_until((first_period + k) * o.period_seconds - 0.3)
                result = simulation.step()
                self._record_boundary(result, boundary, substation)
                price = "-" if result.clearing.price is None else f"{result.clearing.price / 10_000:.1f}ct"
                bar.set_postfix_str(f"{time.strftime('%H:%M', time.gmtime(result.start))} price {price} "
                                    f"local {result.clearing.traded_mwh / 1e6:.1f}kWh")
            else:
                time.sleep(o.period_seconds)
            for p in self.processes:
                p.check()
            while settled < o.periods and outer.exchange(first_period + settled, block_id=self._confirmed()).rolledUp:
                settled += 1
                bar.update(1)
            if settled == o.periods:
                break
        bar.close()
        return settled

    def _confirmed(self) -> int:
        return max(self.chain.blocks.head.number - self.confirmations, 0)

    @staticmethod
    def _wait_until(t: float) -> None:
        delay = t - time.time()
        if delay > 0:
            time.sleep(delay)

    @staticmethod
    def _record_boundary(result, boundary: MeterRegister, substation: MeterRegister) -> None:
        """The connection meters: what the microgrid draws from / feeds to the district, with line
        losses inside the microgrid, and the substation seeing the same through its own losses."""
        withdrawn = sum(h.import_mwh for h in result.households)
        injected = sum(h.export_mwh for h in result.households)
        losses = int(withdrawn * LINE_LOSS)
        net = withdrawn + losses - injected  # > 0: drawn from upstream
        boundary.record(max(net, 0), max(-net, 0))
        sub_net = net + int(abs(net) * LINE_LOSS)
        substation.record(max(sub_net, 0), max(-sub_net, 0))

    # -- the end ------------------------------------------------------------------------
    def _audit(self, dep: Deployment) -> tuple[str, Path]:
        export = self.work / "archive-export.jsonl"
        export_archive(f"sqlite:///{self.work / 'node-a.db'}", export)
        names = {bytes.fromhex(gid[2:]): name for name, gid in dep.groups.items()}
        view = read_chain(self.chain.provider.web3, dep, self.confirmations)
        result = audit(view, read_export(export), names, Provenance.of(view, export))
        for f in result.failures:
            self.echo(f"audit finding: {f}")
        for f in result.evidence:
            self.echo(f"audit evidence (against a meter key, settled by the rule): {f}")
        write_findings(result, self.work / "report" / "findings.json")
        report = write_report(result, self.work / "report", "Neighbourhood demo: settlement audit")
        return ("PASS" if result.ok else f"FAIL ({len(result.failures)} findings)"), report

    def _gas_spent(self, from_block: int) -> int:
        """Gas of every transaction since set-up: batches, finalizations, roll-ups, any fraud proof."""
        w3 = self.chain.provider.web3
        return sum(w3.eth.get_block(n)["gasUsed"] for n in range(from_block, w3.eth.block_number + 1))

    def _stop_all(self) -> None:
        for p in self.processes:
            p.stop()
        for m in self.meters:
            if m.server is not None:
                m.server.stop()


def whole_wh(totals_mwh: tuple[int, int]) -> tuple[int, int]:
    """Import and export registers cut to whole Wh, in mWh."""
    return totals_mwh[0] // 1000 * 1000, totals_mwh[1] // 1000 * 1000
