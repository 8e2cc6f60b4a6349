"""Deploying a settlement network with ape, registering meter points, and the deployment file.

The deployment file (JSON, rust_core.deployment) is what every other tool reads: node and oracle
configs take the ledger and registry addresses from it, the audit takes the grids and the first block.
Used by `ape run deploy`, `ape run register` and the demo; all chain writes go through ape
accounts, so the same code deploys to the local anvil and to any network ape knows.
"""
from __future__ import annotations

import csv
import time
import tomllib
from decimal import Decimal
from dataclasses import dataclass
from pathlib import Path

from eth_utils import to_checksum_address
from rust_core.wire import group_id, meter_label_id, wh_to_mwh

from rust_core.deployment import Deployment

KINDS = {"consumption": 0, "generation": 1, "prosumer": 2, "storage": 3, "boundary": 4}
OPEN_ENDED = 2**64 - 1
ZERO_GROUP = b"\x00" * 32


class SpecError(ValueError):
    """A network spec or meter CSV that cannot be deployed as written (names file, row and field)."""


@dataclass(frozen=True)
class GridSpec:
    name: str
    groups: tuple[str, ...]
    grids: tuple[str, ...] = ()  # member grids, deployed before this one
    boundary_group: str | None = None
    responsible_group: str | None = None
    loss_bps: int = 0


@dataclass(frozen=True)
class NetworkSpec:
    period_seconds: int
    challenge_window_seconds: int
    quorum: int
    operators: tuple[str, ...]
    meter_operators: tuple[str, ...]
    grids: tuple[GridSpec, ...] = ()

    @classmethod
    def from_toml(cls, path: Path) -> "NetworkSpec":
        raw = tomllib.loads(path.read_text())
        try:
            grids = tuple(
                GridSpec(g["name"], tuple(g.get("groups", ())), tuple(g.get("grids", ())), g.get("boundary_group"),
                         g.get("responsible_group"), int(g.get("loss_bps", 0)))
                for g in raw.get("grids", ())
            )
            return cls(int(raw["period_seconds"]), int(raw["challenge_window_seconds"]), int(raw["quorum"]),
                       tuple(raw["operators"]), tuple(raw.get("meter_operators", ())), grids)
        except KeyError as e:
            raise SpecError(f"{path}: missing key {e.args[0]!r}") from None


def deploy(project, chain, admin, spec: NetworkSpec) -> Deployment:
    """Registry, ledger and grids (inner grids first); roles, operators and quorum as specified."""
    first_block = chain.blocks.head.number + 1
    registry = admin.deploy(project.MeterRegistry, admin)
    for op in spec.meter_operators:
        registry.grantRole(registry.METER_OPERATOR_ROLE(), op, sender=admin)
    for op in spec.operators:
        registry.addOperator(op, sender=admin)
    registry.setQuorum(spec.quorum, sender=admin)
    ledger = admin.deploy(project.PeriodLedger, registry, spec.period_seconds, spec.challenge_window_seconds)
    dep = Deployment(chain_id=chain.chain_id, registry=registry.address, ledger=ledger.address,
                     period_seconds=spec.period_seconds, challenge_window_seconds=spec.challenge_window_seconds,
                     first_block=first_block)
    for g in spec.grids:
        if not g.responsible_group:
            raise SpecError(f"grid {g.name!r}: responsible_group (who carries the imbalance) is required")
        for name in (*g.groups, *filter(None, (g.boundary_group, g.responsible_group))):
            dep.groups[name] = "0x" + group_id(name).hex()
        grid = admin.deploy(
            project.Grid, registry, ledger, group_id(g.name),
            group_id(g.boundary_group) if g.boundary_group else ZERO_GROUP,
            group_id(g.responsible_group), g.loss_bps,
        )
        for name in g.groups:
            grid.addGroup(group_id(name), sender=admin)
        for inner in g.grids:
            if inner not in dep.grids:
                raise SpecError(f"grid {g.name!r}: member grid {inner!r} must be listed before it")
            grid.addGrid(dep.grids[inner], sender=admin)
        dep.grids[g.name] = grid.address
    return dep


@dataclass(frozen=True)
class MeterRow:
    """One meter point as a meter point operator keeps it (one CSV row)."""

    meter: str  # scheme:identity
    key: str  # the address of the meter's (gateway's) signing key
    kind: str
    group: str
    active_from: int  # first period the meter settles in
    baseline_import_mwh: int
    baseline_export_mwh: int
    active_until: int = OPEN_ENDED

    def register_args(self) -> tuple:
        return (meter_label_id(self.meter), self.key, KINDS[self.kind], group_id(self.group), self.active_from,
                self.active_until, self.baseline_import_mwh, self.baseline_export_mwh)


CSV_FIELDS = ("meter", "key", "kind", "group", "active_from", "baseline_import_wh", "baseline_export_wh")


def read_meter_csv(path: Path, period_seconds: int, now: float | None = None) -> list[MeterRow]:
    """Columns: meter (scheme:identity), key (address), kind (consumption|generation|prosumer|
    storage|boundary), group, active_from (a period number, or empty for the next period),
    baseline_import_wh, baseline_export_wh (the registers at registration, in Wh)."""
    rows: list[MeterRow] = []
    next_period = int((now if now is not None else time.time()) // period_seconds) + 1
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_FIELDS if c not in (reader.fieldnames or ())]
        if missing:
            raise SpecError(f"{path}: missing column(s) {', '.join(missing)}")
        seen: set[str] = set()
        for line, r in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                meter_label_id(r["meter"])  # validates the id's form
                baseline = (wh_to_mwh(r["baseline_import_wh"], "baseline_import_wh"),
                            wh_to_mwh(r["baseline_export_wh"], "baseline_export_wh"))
            except ValueError as e:
                raise SpecError(f"{where}: {e}") from None
            if r["meter"] in seen:
                raise SpecError(f"{where}: meter {r['meter']} listed twice")
            seen.add(r["meter"])
            if r["kind"] not in KINDS:
                raise SpecError(f"{where}: kind {r['kind']!r} is not one of {', '.join(KINDS)}")
            try:
                key = to_checksum_address(r["key"])
            except ValueError:
                raise SpecError(f"{where}: key {r['key']!r} is not an address") from None
            active_from = int(r["active_from"]) if r["active_from"].strip() else next_period
            rows.append(MeterRow(r["meter"], key, r["kind"], r["group"], active_from, *baseline))
    return rows


def write_meter_csv(path: Path, rows: list[MeterRow]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for r in rows:
            w.writerow([r.meter, r.key, r.kind, r.group, r.active_from,
                        f"{Decimal(r.baseline_import_mwh) / 1000}", f"{Decimal(r.baseline_export_mwh) / 1000}"])


def register(project, meter_operator, dep: Deployment, rows: list[MeterRow]) -> list[str]:
    """Registers every row not registered yet; returns the meters it registered."""
    registry = project.MeterRegistry.at(dep.registry)
    done = []
    for r in rows:
        if registry.getMeter(meter_label_id(r.meter)).key != "0x" + "00" * 20:
            continue  # re-running the same CSV is safe: registered meters are skipped
        registry.registerMeter(*r.register_args(), sender=meter_operator)
        done.append(r.meter)
    return done
