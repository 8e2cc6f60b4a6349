"""The independent audit: rebuilds every period from chain events alone plus an archive export,
and recomputes every leaf, signature, previous register, Merkle-sum root, total, grid roll-up,
conservation check and allocation. Nothing is taken from a node's own conclusions: the export is
only the leaves (readings with their signatures) and the equivocation evidence the node archived
(pairs of signed readings), and everything else is recomputed here.

Equivocation evidence (a meter key that signed two readings that cannot both be true) is checked
like a leaf: both signatures must recover the meter's registered key and the two readings must
really conflict; then it is a finding of severity "evidence" (against the meter key, not a failure
of the settlement), and the chain's final batch must hold the reading the batch rule selects
(latest timestamp, then lowest signature), else a failure. An entry that is no evidence (not
signed by the meter key, identical readings, no conflict) is a failure of the export.

A finding names the period, the group (or grid), the meter where there is one, a stable kind,
and what the recomputation expected beside what the chain (or the leaf) actually records.
`write_findings` writes them as JSON with the audit's provenance: chain id, contract addresses,
block range read, the export's sha256, the software version and the time of the audit.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from web3 import Web3

import rust_core
from node.archive import (
    BATCH_BUILT,
    BATCH_FINAL,
    BATCH_REJECTED,
    BATCH_SUPERSEDED,
    EQUIVOCATION_REGRESSION,
    EQUIVOCATION_SAME_TIME,
    Equivocation,
    open_archive,
)
from node.availability import revealed_leaves
from node.chain import OperatorSet, key_at, with_rotation
from rust_core.wire import Leaf, LeafModel, Register, SignedReading, SumNode, parse_hex32
from scripts._deployment import ZERO_ADDRESS, Deployment, contract_at

# -- archive export -----------------------------------------------------------------------
EVIDENCE_RECORD = "equivocation"  # the "record" of an evidence line (a leaf line has none)


class Exported(NamedTuple):
    leaves: int
    equivocations: int


def export_archive(archive_url: str, out: Path) -> Exported:
    """Writes the leaves of every batch one node's archive holds, then its equivocation evidence,
    as JSON lines. Which batches are final is for the audit to read from the chain, not from the
    node; whether the evidence is evidence, for the audit to verify."""
    archive = open_archive(archive_url)
    n = 0
    try:
        records = [rec for status in (BATCH_BUILT, BATCH_FINAL, BATCH_SUPERSEDED, BATCH_REJECTED)
                   for rec in archive.batches_with_status(status)]
        equivocations = archive.equivocations()
        with open(out, "w") as f:
            for rec in records:
                for index, leaf in enumerate(archive.leaves(rec.period, rec.group_id, rec.root)):
                    f.write(json.dumps(leaf_to_json(rec.period, rec.group_id, rec.root, index, leaf)) + "\n")
                    n += 1
            for e in equivocations:
                f.write(json.dumps(equivocation_to_json(e)) + "\n")
    finally:
        archive.close()
    return Exported(n, len(equivocations))


def leaf_to_json(period: int, group_id: bytes, root: bytes, index: int, leaf: Leaf) -> dict:
    """One export line: the batch key, the leaf's index and the leaf (rust_core.wire.LeafModel)."""
    return {"group_id": "0x" + group_id.hex(), "root": "0x" + root.hex(), "index": index,
            **LeafModel.of(Leaf._make(leaf)._replace(period=period)).model_dump(mode="json")}


def equivocation_to_json(e: Equivocation) -> dict:
    """One evidence line: its kind, the period of the reading that revealed it and both signed
    readings as delivered (rust_core.wire.SignedReading, raw frame included)."""
    return {"record": EVIDENCE_RECORD, "kind": e.kind, "period": e.period,
            "first": e.first.to_wire(), "second": e.second.to_wire()}


@dataclass(frozen=True)
class Evidence:
    """One equivocation entry of an export, as the export claims it (the audit verifies it)."""

    kind: str
    period: int
    first: SignedReading
    second: SignedReading
    line: int  # in the export file


class ArchiveExport(dict[tuple[int, bytes, bytes], list[Leaf]]):
    """(period, group_id, root) -> leaves in index order; `evidence` the equivocation entries."""

    def __init__(self, batches: dict[tuple[int, bytes, bytes], list[Leaf]] | None = None,
                 evidence: Iterable[Evidence] = ()) -> None:
        super().__init__(batches or {})
        self.evidence = list(evidence)


def read_export(path: Path) -> ArchiveExport:
    batches: dict[tuple[int, bytes, bytes], list[tuple[int, Leaf]]] = defaultdict(list)
    evidence = []
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            try:
                d = json.loads(line)
                if d.get("record") == EVIDENCE_RECORD:
                    if type(d["kind"]) is not str or type(d["period"]) is not int:
                        raise ValueError("kind or period malformed")
                    evidence.append(Evidence(d["kind"], d["period"], SignedReading.model_validate(d["first"]),
                                             SignedReading.model_validate(d["second"]), line_no))
                    continue
                leaf = LeafModel.model_validate(d).value()
                group, root = parse_hex32(d["group_id"]), parse_hex32(d["root"])
                if group is None or root is None or type(d["index"]) is not int:
                    raise ValueError("group_id, root or index malformed")
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"{path}:{line_no}: not an archive export line ({e})") from None
            batches[(leaf.period, group, root)].append((d["index"], leaf))
    return ArchiveExport({k: [leaf for _, leaf in sorted(v)] for k, v in batches.items()}, evidence)


# -- what the chain says ------------------------------------------------------------------
@dataclass(frozen=True)
class MeterPoint:
    key: bytes
    kind: int
    group_id: bytes
    active_from: int
    active_until: int
    baseline: tuple[int, int]
    key_changes: tuple[tuple[int, bytes], ...] = ()  # (from period, key) in ascending order

    def key_at(self, period: int) -> bytes:
        """The key that signs the meter's readings of `period` (MeterRegistry.keyAt)."""
        return key_at(self.key, self.key_changes, period)


@dataclass(frozen=True)
class FinalBatch:
    period: int
    group_id: bytes
    root: bytes
    total_import: int
    total_export: int
    count: int
    block: int = 0  # where BatchFinalized was emitted
    epoch: int = 0  # the operator epoch its header names
    # the operators whose signatures its submission carried, recovered from the submitBatch
    # calldata in signature order (None: the transaction is no submitBatch call to the ledger)
    signers: tuple[bytes, ...] | None = None


HEADER_FIELDS = ("period", "groupId", "root", "totalImportMwh", "totalExportMwh", "count", "epoch")


def submission_signers(w3: Web3, ledger, tx_hash, domain: bytes) -> tuple[bytes, ...] | None:
    """The signers of the header a submitBatch transaction carried, in its order (None: the
    transaction is not a submitBatch call to `ledger`)."""
    tx = w3.eth.get_transaction(tx_hash)
    if (tx["to"] or "").lower() != ledger.address.lower():
        return None
    try:
        fn, args = ledger.decode_function_input(tx["input"])
    except ValueError:
        return None
    if fn.fn_name != "submitBatch":
        return None
    digest = rust_core.batch_digest(domain, tuple(args["h"][f] for f in HEADER_FIELDS))
    return tuple(rust_core.recover_signer(digest, bytes(sig)) for sig in args["signatures"])


@dataclass
class GridRecord:
    name: str
    address: str
    boundary_group: bytes
    loss_bps: int
    members: list[tuple[bytes, str]]  # (member id, member grid address or zero)
    flows: dict[int, dict[bytes, tuple[int, int]]] = field(default_factory=dict)  # period -> member -> (inj, wd)
    rollups: dict[int, dict] = field(default_factory=dict)
    allocations: dict[int, dict[tuple[bytes, bytes], int]] = field(default_factory=dict)
    loss_bps_at: dict[int, int] = field(default_factory=dict)  # rolled-up period -> lossBpsAt(period)
    removed: dict[bytes, int] = field(default_factory=dict)  # member -> first period it no longer counts in
    added: dict[bytes, int] = field(default_factory=dict)  # member -> first period it counts in
    rollup_blocks: dict[int, int] = field(default_factory=dict)  # period -> block of its PeriodRolledUp


@dataclass
class ChainView:
    meters: dict[bytes, MeterPoint]
    finals: dict[tuple[int, bytes], FinalBatch]
    grids: list[GridRecord]  # inner grids first
    rejected: list[tuple[int, bytes, bytes, int]]  # (period, group, root, reason; 11: an orphan, 12: withheld)
    period_seconds: int
    domain: bytes
    chain_id: int
    registry: str
    ledger: str
    blocks: tuple[int, int]  # the block range read, inclusive
    # (period, group, root) -> leaves posted in a data availability reveal: the chain alone holds them
    revealed: dict[tuple[int, bytes, bytes], list[Leaf]] = field(default_factory=dict)
    # headers (period, group, root, import, export, count) the ledger banned: rejected for a fraud in
    # their data (BANNING_REASONS); a header rejected unrevealed, as an orphan or against its
    # context may come again and be final
    banned_headers: set[tuple] = field(default_factory=set)
    # meter -> the metering point it was exchanged into (MeterExchanged); any other meter is its own
    points: dict[bytes, bytes] = field(default_factory=dict)
    # operator epoch -> its set and quorum (OperatorEpochStarted)
    epochs: dict[int, OperatorSet] = field(default_factory=dict)

    def point_of(self, meter_id: bytes) -> bytes:
        return self.points.get(meter_id, meter_id)


# BatchRejected reasons that ban the header (FraudProofs: a fraud in the data itself): bad
# signature, out of order, bad sum, bad leaf sum, bad padding, bad node kind, bad width
BANNING_REASONS = frozenset({1, 4, 5, 6, 7, 9, 10})


def _logs(contract, event: str, first_block: int, last_block: int) -> list:
    return list(getattr(contract.events, event)().get_logs(from_block=first_block, to_block=last_block))


def read_chain(w3: Web3, dep: Deployment, confirmations: int = 0) -> ChainView:
    """Everything from `dep.first_block` to the block `confirmations` below the head at the time
    of the call (one snapshot: the state calls read the same block). On a chain that can
    reorganise (Clique) the tip's events may yet be replaced, and reading them in several
    requests mixes two forks (a roll-up seen without the final batch it rolled up): read only
    what is buried as deep as the settlement nodes act on."""
    head = max(w3.eth.block_number - confirmations, dep.first_block)
    registry = contract_at(w3, "MeterRegistry", dep.registry)
    ledger = contract_at(w3, "PeriodLedger", dep.ledger)
    meters = {
        bytes(e.args.meterId): MeterPoint(bytes.fromhex(e.args.key[2:]), e.args.kind, bytes(e.args.groupId),
                                          e.args.activeFrom, e.args.activeUntil,
                                          (e.args.baselineImportMwh, e.args.baselineExportMwh))
        for e in _logs(registry, "MeterRegistered", dep.first_block, head)
    }
    for e in _logs(registry, "MeterKeyRotated", dep.first_block, head):
        m = meters[bytes(e.args.meterId)]
        meters[bytes(e.args.meterId)] = replace(m, key_changes=with_rotation(
            m.key_changes, e.args.fromPeriod, bytes.fromhex(e.args.key[2:]), e.args.replacesPending))
    for e in _logs(registry, "MeterDecommissioned", dep.first_block, head):  # in chain order, each shortening
        meters[bytes(e.args.meterId)] = replace(meters[bytes(e.args.meterId)], active_until=e.args.lastPeriod)
    submissions = {(e.args.period, bytes(e.args.groupId), bytes(e.args.root)): e  # the latest of each header
                   for e in _logs(ledger, "BatchSubmitted", dep.first_block, head)}
    submitted = {key: (e.args.totalImportMwh, e.args.totalExportMwh, e.args.count) for key, e in submissions.items()}
    chain_id = w3.eth.chain_id
    domain = rust_core.domain_separator(chain_id, bytes.fromhex(dep.ledger[2:]))
    finals = {}
    for e in _logs(ledger, "BatchFinalized", dep.first_block, head):
        key = (e.args.period, bytes(e.args.groupId), bytes(e.args.root))
        sub = submissions[key]
        finals[key[:2]] = FinalBatch(*key, *submitted[key], e.blockNumber, sub.args.epoch,
                                     submission_signers(w3, ledger, sub.transactionHash, domain))
    epochs = {e.args.epoch: OperatorSet(e.args.epoch, sorted(bytes.fromhex(a[2:]) for a in e.args.operators),
                                        e.args.quorum)
              for e in _logs(registry, "OperatorEpochStarted", dep.first_block, head)}
    rejected = [(e.args.period, bytes(e.args.groupId), bytes(e.args.root), e.args.reason)
                for e in _logs(ledger, "BatchRejected", dep.first_block, head)]
    banned_headers = {(p, g, r, *submitted[(p, g, r)]) for p, g, r, reason in rejected
                      if reason in BANNING_REASONS and (p, g, r) in submitted}
    grids = []
    for name, address in dep.grids.items():
        grid = contract_at(w3, "Grid", address)
        rec = GridRecord(name, address, bytes(grid.functions.boundaryGroup().call(block_identifier=head)),
                         # the allowance in force at the head; a grid whose setLossBps changed it
                         # after earlier roll-ups would show those periods as findings
                         grid.functions.lossBps().call(block_identifier=head),
                         [(bytes(e.args.memberId), e.args.grid) for e in _logs(grid, "MemberAdded", dep.first_block, head)])
        for e in _logs(grid, "MemberFlowRecorded", dep.first_block, head):
            rec.flows.setdefault(e.args.period, {})[bytes(e.args.memberId)] = (e.args.injected, e.args.withdrawn)
        for e in _logs(grid, "PeriodRolledUp", dep.first_block, head):
            rec.rollups[e.args.period] = dict(e.args)
        for e in _logs(grid, "Allocated", dep.first_block, head):
            rec.allocations.setdefault(e.args.period, {})[(bytes(e.args.consumer), bytes(e.args.producer))] = e.args.mwh
        for e in _logs(grid, "PeriodRolledUp", dep.first_block, head):
            rec.rollup_blocks[e.args.period] = e.blockNumber
            rec.loss_bps_at[e.args.period] = grid.functions.lossBpsAt(e.args.period).call(block_identifier=head)
        for e in _logs(grid, "MemberAdded", dep.first_block, head):
            rec.added[bytes(e.args.memberId)] = e.args.fromPeriod
        for e in _logs(grid, "MemberRemoved", dep.first_block, head):
            rec.removed[bytes(e.args.memberId)] = e.args.fromPeriod
        grids.append(rec)
    points = {bytes(e.args.newMeterId): bytes(e.args.pointId)
              for e in _logs(registry, "MeterExchanged", dep.first_block, head)}
    return ChainView(meters, finals, grids, rejected, dep.period_seconds, domain, chain_id, dep.registry, dep.ledger,
                     (dep.first_block, head), _revealed(ledger, dep.first_block, head), banned_headers, points,
                     epochs)


def _revealed(ledger, first_block: int, head: int) -> dict[tuple[int, bytes, bytes], list[Leaf]]:
    """The leaves of every batch revealed in a data availability challenge, from the chain alone:
    the LeavesRevealed chunks of the revealer BatchRevealed names, posted after the slot's latest
    submission, from that revealer's last restart (a chunk at index 0); each chunk's leaves are
    its revealLeaves transaction's calldata, checked against the log's chunkHash."""
    events = [*_logs(ledger, "BatchSubmitted", first_block, head), *_logs(ledger, "LeavesRevealed", first_block, head),
              *_logs(ledger, "BatchRevealed", first_block, head)]
    events.sort(key=lambda e: (e.blockNumber, e.logIndex))
    roots: dict[tuple[int, bytes], bytes] = {}
    chunks: dict[tuple[int, bytes, str], list[Leaf]] = {}
    out = {}
    for e in events:
        slot = (e.args.period, bytes(e.args.groupId))
        if e.event == "BatchSubmitted":
            roots[slot] = bytes(e.args.root)
            for k in [k for k in chunks if k[:2] == slot]:
                del chunks[k]
        elif e.event == "LeavesRevealed":
            key = (*slot, e.args.revealer)
            if e.args.firstIndex == 0:
                chunks[key] = []
            chunks.setdefault(key, []).extend(
                revealed_leaves(ledger, e.transactionHash, e.args.firstIndex, e.args.count, e.args.chunkHash))
        else:
            out[(*slot, roots[slot])] = chunks.get((*slot, e.args.revealer), [])
    return out


# -- recomputation ----------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One mismatch. `expected` is what the audit recomputed from the evidence (or what a rule
    demands), `actual` what the chain or the leaf records; both JSON values."""

    period: int
    scope: str  # "group" or "grid"
    name: str  # the group's or grid's name (or a shortened id when it has none)
    meter: str | None  # 0x meter id, where the finding is about one meter
    kind: str  # stable: see FINDING_KINDS
    expected: Any
    actual: Any
    what: str  # the same for a person

    def __post_init__(self) -> None:
        if self.kind not in FINDING_KINDS:
            raise ValueError(f"finding kind {self.kind!r} is not one of FINDING_KINDS")

    @property
    def severity(self) -> str:
        """SEVERITY_EVIDENCE (against a meter key; the settlement holds) or SEVERITY_FAILURE."""
        return SEVERITY_EVIDENCE if self.kind in EVIDENCE_KINDS else SEVERITY_FAILURE

    @property
    def where(self) -> str:
        return f"{self.scope} {self.name}"

    def __str__(self) -> str:
        meter = f" meter {self.meter}" if self.meter else ""
        return f"period {self.period} {self.where}{meter}: {self.what}"


FINDING_KINDS = (
    "export_missing_batch", "tree_invalid", "root", "import_total", "export_total", "leaf_count",
    "leaf_order", "meter_unregistered", "meter_group", "meter_inactive", "reading_period", "previous_register",
    "register_backwards", "signature", "rollup_missing_member", "rollup_order", "member_flow",
    "rollup_missing_boundary", "rollup_figure", "conservation", "allocation", "allocation_excess",
    "rejected_header_final", "meter_equivocation", "equivocation_rule", "export_bad_evidence", "batch_quorum",
)
SEVERITY_FAILURE = "failure"    # the settlement (or the export it is audited with) is wrong
SEVERITY_EVIDENCE = "evidence"  # shown, not failed: evidence against a meter key the settlement resolved
EVIDENCE_KINDS = ("meter_equivocation",)


@dataclass(frozen=True)
class Provenance:
    """What an audit read and with what: enough to repeat it and to tell two audits apart."""

    chain_id: int
    registry: str
    ledger: str
    grids: dict[str, str]  # name -> address
    from_block: int
    to_block: int
    export: str  # the archive export's path
    export_sha256: str
    software_version: str
    git_commit: str | None  # of the checkout the audit ran from, when it is one
    audited_at: str  # UTC, ISO 8601

    @classmethod
    def of(cls, view: ChainView, export_path: Path, now: datetime | None = None) -> Provenance:
        return cls(view.chain_id, view.registry, view.ledger, {g.name: g.address for g in view.grids}, *view.blocks,
                   str(export_path), hashlib.sha256(Path(export_path).read_bytes()).hexdigest(), _version(),
                   _git_commit(), (now or datetime.now(UTC)).isoformat(timespec="seconds"))


def _version() -> str:
    try:
        return metadata.version("energy-settlement")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@dataclass
class PeriodFigures:
    """What the report shows for one period (all mWh)."""

    groups: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (injected, withdrawn)
    grids: dict[str, dict] = field(default_factory=dict)  # name -> roll-up figures
    origin: dict[tuple[str, str], int] = field(default_factory=dict)  # (consumer, producer) -> mWh


@dataclass
class AuditResult:
    findings: list[Finding]
    periods: dict[int, PeriodFigures]
    batches: int
    leaves: int
    rejected: list[tuple[int, bytes, bytes, int]]
    period_seconds: int
    provenance: Provenance | None = None
    # metering point -> (import, export) mWh settled in final batches: the sum of every delta of
    # every meter that served it, so a meter exchange neither loses nor double-counts energy
    point_energy: dict[bytes, tuple[int, int]] = field(default_factory=dict)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == SEVERITY_FAILURE]

    @property
    def evidence(self) -> list[Finding]:
        """Equivocation evidence against meter keys (verified; not a failure of the settlement)."""
        return [f for f in self.findings if f.severity == SEVERITY_EVIDENCE]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def verdict(self) -> str:
        return "PASS" if self.ok else "FAIL"

    def period_start(self, period: int) -> datetime:
        """When `period` began (UTC), by the ledger's period length."""
        return datetime.fromtimestamp(period * self.period_seconds, UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k if isinstance(k, str) else "->".join(map(str, _jsonable(k))): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def findings_document(result: AuditResult) -> dict:
    """The machine-readable audit: provenance, verdict, counts and every finding."""
    return {
        "provenance": asdict(result.provenance) if result.provenance else None,
        "verdict": result.verdict,
        "final_batches": result.batches,
        "readings": result.leaves,
        "rejected_batches": len(result.rejected),
        "failures": len(result.failures),
        "evidence": len(result.evidence),
        "periods": {str(p): result.period_start(p).isoformat() for p in sorted(result.periods)},
        "findings": [{"period": f.period, "period_start": result.period_start(f.period).isoformat(),
                      "scope": f.scope, "name": f.name, "meter": f.meter, "kind": f.kind, "severity": f.severity,
                      "expected": _jsonable(f.expected), "actual": _jsonable(f.actual), "what": f.what}
                     for f in result.findings],
    }


def write_findings(result: AuditResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(findings_document(result), indent=1) + "\n")
    return path


def audit(view: ChainView, export: dict[tuple[int, bytes, bytes], list[Leaf]],
          names: dict[bytes, str] | None = None, provenance: Provenance | None = None) -> AuditResult:
    names = dict(names or {})
    name = lambda gid: names.get(gid, "0x" + gid.hex()[:12])  # noqa: E731
    meter_name = lambda mid: "0x" + mid.hex()  # noqa: E731
    findings: list[Finding] = []
    periods: dict[int, PeriodFigures] = defaultdict(PeriodFigures)
    state: dict[bytes, Register] = {}  # meter -> the register of its latest final leaf
    point_energy: dict[bytes, tuple[int, int]] = {}
    n_leaves = 0
    boundaries = {g.boundary_group for g in view.grids}
    final_leaves: dict[tuple[int, bytes], list[Leaf]] = {}  # (period, group) -> the final batch's leaves

    for (period, gid), fb in sorted(view.finals.items()):
        where = name(gid)
        if (period, gid, fb.root, fb.total_import, fb.total_export, fb.count) in view.banned_headers:
            findings.append(Finding(period, "group", where, None, "rejected_header_final", None,
                                    "0x" + fb.root.hex(), "a header the ledger banned (proven false) is final"))
        findings += _check_quorum(view, fb, where)
        # a revealed batch is recomputed from the chain alone; every other from the export
        leaves = view.revealed.get((period, gid, fb.root)) or export.get((period, gid, fb.root))
        if leaves is None:
            findings.append(Finding(period, "group", where, None, "export_missing_batch", "0x" + fb.root.hex(), None,
                                    f"the archive export has no leaves for final root 0x{fb.root.hex()}"))
            continue
        n_leaves += len(leaves)
        final_leaves[(period, gid)] = leaves
        findings += _check_leaves(view, period, gid, where, leaves, state, meter_name)
        try:
            tree = rust_core.MerkleSumTree(leaves, check_order=False)
            root, imp, exp = SumNode._make(tree.root)
        except rust_core.CoreError as e:
            findings.append(Finding(period, "group", where, None, "tree_invalid", "a Merkle-sum tree", str(e),
                                    f"the leaves do not build a tree: {e}"))
            continue
        for kind, mine, chain in (("root", "0x" + root.hex(), "0x" + fb.root.hex()),
                                  ("import_total", imp, fb.total_import), ("export_total", exp, fb.total_export),
                                  ("leaf_count", len(leaves), fb.count)):
            if mine != chain:
                findings.append(Finding(period, "group", where, None, kind, mine, chain,
                                        f"{kind.replace('_', ' ')}: recomputed {mine}, chain says {chain}"))
        if gid not in boundaries:  # boundary meters show as a grid's exchange, not as a member
            periods[period].groups[name(gid)] = (fb.total_export, fb.total_import)
        for leaf in leaves:
            state[leaf.meter_id] = Register(period, leaf.import_mwh, leaf.export_mwh)
            point = view.point_of(leaf.meter_id)
            imp_, exp_ = point_energy.get(point, (0, 0))
            point_energy[point] = (imp_ + leaf.import_mwh - leaf.prev_import_mwh,
                                   exp_ + leaf.export_mwh - leaf.prev_export_mwh)

    exchange: dict[tuple[str, int], tuple[int, int]] = {}  # (grid address, period) -> (toUp, fromUp)
    for grid in view.grids:
        for period, chain_rollup in sorted(grid.rollups.items()):
            findings += _check_rollup(view, grid, period, chain_rollup, exchange, periods[period], name)
    findings += _check_evidence(view, getattr(export, "evidence", []), final_leaves, name)
    return AuditResult(findings, dict(periods), len(view.finals), n_leaves, view.rejected, view.period_seconds,
                       provenance, point_energy)


def _check_quorum(view: ChainView, fb: FinalBatch, where: str) -> list[Finding]:
    """The final batch's header was co-signed by the quorum of the operator epoch it names: at
    least k distinct operators of that epoch's set, in ascending order (what submitBatch checks)."""
    ep = view.epochs.get(fb.epoch)
    expected = (f"{ep.quorum} of the {len(ep.operators)} operators of epoch {fb.epoch}" if ep
                else f"an operator epoch the registry started (epoch {fb.epoch})")
    signers = fb.signers
    if signers is None:
        problem = "its submission is no submitBatch call to the ledger: the signatures cannot be read"
    elif ep is None:
        problem = f"epoch {fb.epoch} was never started in the registry"
    elif outsiders := [s for s in signers if s not in ep.operators]:
        problem = f"signed by {', '.join('0x' + s.hex() for s in outsiders)}, not operator(s) of epoch {fb.epoch}"
    elif list(signers) != sorted(set(signers)):
        problem = "the signers are not distinct and ascending"
    elif len(signers) < ep.quorum:
        problem = f"{len(signers)} signature(s), the quorum of epoch {fb.epoch} is {ep.quorum}"
    else:
        return []
    actual = None if signers is None else ["0x" + s.hex() for s in signers]
    return [Finding(fb.period, "group", where, None, "batch_quorum", expected, actual, f"batch header: {problem}")]


def _check_leaves(view: ChainView, period: int, gid: bytes, where: str, leaves: list[Leaf],
                  state: dict[bytes, Register], meter_name) -> list[Finding]:
    out = []

    def finding(mid: bytes, kind: str, expected: Any, actual: Any, what: str) -> Finding:
        return Finding(period, "group", where, meter_name(mid), kind, expected, actual, what)

    for a, b in zip(leaves, leaves[1:]):
        if a.meter_id >= b.meter_id:
            out.append(finding(b.meter_id, "leaf_order", f"a meter id above {meter_name(a.meter_id)}",
                               meter_name(b.meter_id), "leaves not in strictly ascending meter id order"))
    signers = []
    for leaf in leaves:
        mid = leaf.meter_id
        m = view.meters.get(mid)
        if m is None:
            out.append(finding(mid, "meter_unregistered", "a registered meter", None, "meter is not registered"))
            signers.append(b"\x00" * 20)
            continue
        signers.append(m.key_at(period))
        if m.group_id != gid:
            out.append(finding(mid, "meter_group", "0x" + m.group_id.hex(), "0x" + gid.hex(),
                               "meter belongs to another group"))
        if not m.active_from <= period <= m.active_until:
            out.append(finding(mid, "meter_inactive", [m.active_from, m.active_until], period,
                               f"meter not active (active {m.active_from}..{m.active_until})"))
        if leaf.period != period or leaf.timestamp // view.period_seconds != period:
            out.append(finding(mid, "reading_period", period, [leaf.period, leaf.timestamp],
                               f"reading of period {leaf.period} / time {leaf.timestamp} in this batch"))
        expected = state.get(mid, Register(m.active_from - 1, *m.baseline))
        if leaf.prev != expected:
            out.append(finding(mid, "previous_register", list(expected), list(leaf.prev),
                               f"counts from {tuple(leaf.prev)} (period, import, export), "
                               f"the previous final register is {tuple(expected)}"))
        if leaf.import_mwh < leaf.prev_import_mwh or leaf.export_mwh < leaf.prev_export_mwh:
            out.append(finding(mid, "register_backwards",
                               {"import_mwh_at_least": leaf.prev_import_mwh, "export_mwh_at_least": leaf.prev_export_mwh},
                               {"import_mwh": leaf.import_mwh, "export_mwh": leaf.export_mwh}, "register ran backwards"))
    readings = [leaf.reading for leaf in leaves]
    for index, reason in rust_core.verify_readings(view.domain, readings, [leaf.signature for leaf in leaves], signers):
        out.append(finding(leaves[index].meter_id, "signature", "signed by the registered key 0x" + signers[index].hex(),
                           reason, f"signature: {reason}"))
    return out


def _reading_json(r: SignedReading | Leaf) -> dict:
    """What a meter signed, with its signature (no raw frame: it is unauthenticated)."""
    return {"meter_id": "0x" + r.meter_id.hex(), "period": r.period, "timestamp": r.timestamp,
            "import_mwh": r.import_mwh, "export_mwh": r.export_mwh, "signature": "0x" + r.signature.hex()}


def _rule_key(timestamp: int, signature: bytes) -> tuple[int, bytes]:
    """The batch rule as one order (node/archive.py latest_readings): the greatest key is the
    settled reading, the latest timestamp and of several at it the lowest signature."""
    return timestamp, bytes(255 - b for b in signature)


def _not_evidence(view: ChainView, e: Evidence) -> list[str]:
    """Why an export entry is not equivocation evidence (empty when the two readings conflict)."""
    a, b = e.first, e.second
    why = []
    if a.meter_id != b.meter_id:
        why.append("the two readings are of different meters")
    elif a.meter_id not in view.meters:
        why.append("the meter is not registered")
    if e.period not in (a.period, b.period):
        why.append(f"period {e.period} is neither reading's ({a.period}, {b.period})")
    if a.reading == b.reading:
        why.append("the two readings are identical (two signatures over one reading are no equivocation)")
    elif e.kind == EQUIVOCATION_SAME_TIME:
        if a.timestamp != b.timestamp:
            why.append(f"kind {e.kind} but timestamps {a.timestamp} and {b.timestamp} differ")
    elif e.kind == EQUIVOCATION_REGRESSION:
        if not (a.timestamp < b.timestamp and (a.import_mwh > b.import_mwh or a.export_mwh > b.export_mwh)):
            why.append("the later reading's registers do not run below the earlier one's")
    else:
        why.append(f"unknown evidence kind {e.kind!r}")
    return why


def _check_evidence(view: ChainView, evidence: list[Evidence], final_leaves: dict[tuple[int, bytes], list[Leaf]],
                    name) -> list[Finding]:
    """Verifies the export's equivocation evidence (module docstring) and checks the final batch
    of each period with evidence against the batch rule."""
    out: list[Finding] = []
    readings, signatures, signers = [], [], []
    for e in evidence:
        m = view.meters.get(e.first.meter_id)
        for r in (e.first, e.second):
            readings.append(r.reading)
            signatures.append(r.signature)
            signers.append(m.key_at(r.reading.period) if m else b"\x00" * 20)
    bad_signature: dict[int, list[str]] = defaultdict(list)
    for index, reason in rust_core.verify_readings(view.domain, readings, signatures, signers) if readings else []:
        side = "first" if index % 2 == 0 else "second"
        bad_signature[index // 2].append(f"the {side} reading's signature is not by the meter's key of its period "
                                         f"0x{signers[index].hex()}: {reason}")
    proven: list[Evidence] = []
    seen: set[tuple] = set()
    for i, e in enumerate(evidence):
        pair = (e.kind, e.period, frozenset((r.reading, r.signature) for r in (e.first, e.second)))
        if pair in seen:
            continue  # the same pair again (or in the other order)
        seen.add(pair)
        m = view.meters.get(e.first.meter_id)
        where = name(m.group_id) if m else "(unregistered meter)"
        claimed = {"kind": e.kind, "line": e.line, "first": _reading_json(e.first), "second": _reading_json(e.second)}
        why = _not_evidence(view, e) + bad_signature[i]
        if why:
            out.append(Finding(e.period, "group", where, "0x" + e.first.meter_id.hex(), "export_bad_evidence",
                               "two conflicting readings signed by the meter's registered key", claimed,
                               f"export line {e.line} is no equivocation evidence: {'; '.join(why)}"))
        else:
            proven.append(e)

    # per (meter, period): every proven reading of that period, and the reading the rule selects
    candidates: dict[tuple[bytes, int], dict[tuple[int, bytes], SignedReading]] = defaultdict(dict)
    for e in proven:
        for r in (e.first, e.second):
            candidates[(r.meter_id, r.period)][(r.timestamp, r.signature)] = r
    settled: dict[tuple[bytes, int], Leaf | None] = {}
    for (mid, period), known in sorted(candidates.items()):
        gid = view.meters[mid].group_id
        if (period, gid) not in final_leaves:
            continue  # not final (or its leaves are missing, a finding of its own)
        selected = max(known.values(), key=lambda r: _rule_key(r.timestamp, r.signature))
        leaf = next((lf for lf in final_leaves[(period, gid)] if lf.meter_id == mid), None)
        settled[(mid, period)] = leaf
        if leaf is None or _rule_key(leaf.timestamp, leaf.signature) < _rule_key(selected.timestamp, selected.signature):
            out.append(Finding(period, "group", name(gid), "0x" + mid.hex(), "equivocation_rule",
                               _reading_json(selected), _reading_json(leaf) if leaf else None,
                               "the final batch does not hold the reading the batch rule (latest timestamp, then "
                               f"lowest signature) selects from the equivocation evidence: 0x{selected.signature.hex()}"
                               f" at {selected.timestamp}"))
    for e in proven:
        mid, gid = e.first.meter_id, view.meters[e.first.meter_id].group_id
        periods = sorted({e.first.period, e.second.period})
        final = {p: settled[(mid, p)] for p in periods if (mid, p) in settled}
        out.append(Finding(
            e.period, "group", name(gid), "0x" + mid.hex(), "meter_equivocation",
            {"rule": "latest timestamp, then lowest signature",
             "final_leaf": {str(p): _reading_json(lf) if lf else None for p, lf in final.items()}},
            {"kind": e.kind, "first": _reading_json(e.first), "second": _reading_json(e.second)},
            f"the meter key signed two conflicting readings ({e.kind}): at {e.first.timestamp} "
            f"{e.first.import_mwh}/{e.first.export_mwh} mWh (0x{e.first.signature.hex()[:16]}...) and at "
            f"{e.second.timestamp} {e.second.import_mwh}/{e.second.export_mwh} mWh (0x{e.second.signature.hex()[:16]}...); "
            + ("settled by the rule" if final else "period not final on chain")))
    return out


def _finalized_past(view: ChainView, group: bytes, period: int, by_block: int) -> bool:
    """Whether the group's chain had a final batch above `period` by block `by_block` (Grid.rollUp
    then counts the group as zero in it)."""
    return any(g == group and p > period and fb.block <= by_block for (p, g), fb in view.finals.items())


def _split(amount: int, weights: list[int]) -> list[int]:
    """ProRata.split: floor shares, then the remainder one unit each in member order."""
    total = sum(weights)
    if amount == 0 or total == 0:
        return [0] * len(weights)
    shares = [amount * w // total for w in weights]
    given = sum(shares)
    for i, w in enumerate(weights):
        if given >= amount:
            break
        if shares[i] < w:
            shares[i] += 1
            given += 1
    return shares


def _matrix(amount: int, rows: list[int], cols: list[int]) -> list[list[int]]:
    """ProRata.matrix: floor of rows x cols / amount, then the remainders north-west corner first."""
    n, m = len(rows), len(cols)
    a = [[0] * m for _ in range(n)]
    row_left, col_left = list(rows), list(cols)
    if amount:
        for i in range(n):
            for j in range(m):
                a[i][j] = rows[i] * cols[j] // amount
                row_left[i] -= a[i][j]
                col_left[j] -= a[i][j]
    r = c = 0
    while r < n and c < m:
        take = min(row_left[r], col_left[c])
        a[r][c] += take
        row_left[r] -= take
        col_left[c] -= take
        if row_left[r] == 0:
            r += 1
        else:
            c += 1
    return a


def _check_rollup(view: ChainView, grid: GridRecord, period: int, chain_rollup: dict,
                  exchange: dict, figures: PeriodFigures, name) -> list[Finding]:
    out = []

    def finding(kind: str, expected: Any, actual: Any, what: str) -> Finding:
        return Finding(period, "grid", grid.name, None, kind, expected, actual, what)

    injected, withdrawn, counted = [], [], []
    for member_id, member_grid in grid.members:
        if period >= grid.removed.get(member_id, 2**64) or period < grid.added.get(member_id, 0):
            continue  # removed from this period on, or added after it
        counted.append(member_id)
        if member_grid == ZERO_ADDRESS:
            fb = view.finals.get((period, member_id))
            if fb is not None:
                inj, wd = fb.total_export, fb.total_import
            elif _finalized_past(view, member_id, period, grid.rollup_blocks.get(period, 0)):
                inj = wd = 0  # nothing settled there: its meters' energy is in its next batch
            else:
                return [finding("rollup_missing_member", f"a final batch of member {name(member_id)}", None,
                                f"rolled up without a final batch of member {name(member_id)}")]
        else:
            if (member_grid, period) not in exchange:
                return [finding("rollup_order", f"member grid {member_grid} rolled up first", None,
                                f"rolled up before member grid {member_grid}")]
            inj, wd = exchange[(member_grid, period)]
        injected.append(inj)
        withdrawn.append(wd)
        recorded = grid.flows.get(period, {}).get(member_id)
        if recorded != (inj, wd):
            out.append(finding("member_flow", {"member": name(member_id), "injected": inj, "withdrawn": wd},
                               None if recorded is None else {"member": name(member_id), "injected": recorded[0],
                                                              "withdrawn": recorded[1]},
                               f"member {name(member_id)} flow (injected, withdrawn): recomputed {(inj, wd)}, "
                               f"chain says {recorded}"))
    from_up = to_up = 0
    if grid.boundary_group != b"\x00" * 32:
        fb = view.finals.get((period, grid.boundary_group))
        if fb is not None:
            from_up, to_up = fb.total_import, fb.total_export
        elif not _finalized_past(view, grid.boundary_group, period, grid.rollup_blocks.get(period, 0)):
            return out + [finding("rollup_missing_boundary", "a final boundary batch", None,
                                  "rolled up without a final boundary batch")]
    total_in, total_out = sum(injected), sum(withdrawn)
    entering, leaving = total_in + from_up, total_out + to_up
    if entering > leaving:
        losses = min(entering - leaving, entering * grid.loss_bps_at.get(period, grid.loss_bps) // 10_000)
        imbalance = entering - leaving - losses
    else:
        losses, imbalance = 0, entering - leaving
    local = min(total_in, total_out)
    mine = {"injected": total_in, "withdrawn": total_out, "fromUpstream": from_up, "toUpstream": to_up,
            "losses": losses, "imbalance": imbalance, "localAllocated": local}
    for key, value in mine.items():
        if chain_rollup.get(key) != value:
            out.append(finding("rollup_figure", {key: value}, {key: chain_rollup.get(key)},
                               f"{key}: recomputed {value}, chain says {chain_rollup.get(key)}"))
    if entering != leaving + losses + imbalance:
        out.append(finding("conservation", entering, leaving + losses + imbalance, "conservation does not hold"))
    received, supplied = _split(local, withdrawn), _split(local, injected)
    matrix = _matrix(local, received, supplied)
    ids = counted
    allocation = {(ids[i], ids[j]): v for i, row in enumerate(matrix) for j, v in enumerate(row) if v}
    if allocation != grid.allocations.get(period, {}):
        out.append(finding("allocation", allocation, grid.allocations.get(period, {}),
                           "origin allocation differs from the pro-rata recomputation"))
    if sum(allocation.values()) > local:
        out.append(finding("allocation_excess", local, sum(allocation.values()),
                           "more energy allocated than was generated locally"))
    exchange[(grid.address, period)] = (to_up, from_up)
    figures.grids[grid.name] = mine
    for (c, p), v in allocation.items():
        figures.origin[(name(c), name(p))] = v
    return out
