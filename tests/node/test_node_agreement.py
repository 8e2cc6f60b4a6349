"""Three node processes at quorum 2 of 3 agree on their inputs before the root: a reading that
reached one node only, a meter key that signed three different readings for the three nodes
(1-1-1), and that equivocation with one node down. Every period settles with the root computed
here from the reconciled set, identically in every node's archive, the equivocation evidence is
archived on every node that saw it, and the meter's next honest reading is accepted everywhere
(also where it lies below an equivocating reading that lost). The audit over each node's archive
export shows the equivocation as verified evidence against the meter key, and refuses forged
evidence as a bad export."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from node_harness import Deployment, NodeProcess, deploy_settlement, expected_root, wire
from test_node_three_nodes import PERIOD, STATUS_FINAL, WINDOW, start_nodes, wait_status

from node.archive import EQUIVOCATION_SAME_TIME, open_archive
from scripts._audit import AuditResult, audit, export_archive, read_chain, read_export, write_findings
from scripts._report import write_report

pytestmark = pytest.mark.chain


class Scenario:
    """Readings per period as the honest nodes must settle them (the reconciled set)."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.settled: dict[int, list[tuple]] = {}
        self.sigs: dict[tuple, bytes] = {}
        self.registers = {m.meter_id: [*m.baseline] for m in dep.meters}

    def period(self) -> tuple[int, int]:
        """(period, timestamp) with at least 4 s left in the period."""
        while True:
            now = time.time()
            p = int(now) // PERIOD
            if (p + 1) * PERIOD - now >= 4.0 and p not in self.settled and p >= self.dep.meters[0].active_from:
                return p, int(now)
            time.sleep(0.2)

    def honest(self, p: int, ts: int) -> list[tuple[tuple, dict]]:
        """One reading per meter, (reading, wire entry), registers moving forward."""
        readings = []
        for i, m in enumerate(self.dep.meters):
            self.registers[m.meter_id][0] += 1000 + 17 * i
            readings.append((m.meter_id, p, ts, *self.registers[m.meter_id]))
        body = wire(self.dep, readings, [m.key for m in self.dep.meters])
        return list(zip(readings, body))

    def settle(self, p: int, pairs: list[tuple[tuple, dict]]) -> None:
        self.settled[p] = [r for r, _ in pairs]
        for r, entry in pairs:
            self.sigs[r] = bytes.fromhex(entry["signature"][2:])

    def equivocation(self, p: int, ts: int, meter: int, n: int) -> tuple[list[tuple[tuple, dict]], int]:
        """n different readings of one meter at one timestamp, and the index of the one the rule
        settles (the lowest signature), chosen so that it has the lowest registers: the meter's
        next honest reading then lies below the others, as in a minority node's archive."""
        m = self.dep.meters[meter]
        base = self.registers[m.meter_id][0]
        for attempt in range(50):
            readings = [(m.meter_id, p, ts, base + 1000 + attempt + 40_000 * k, self.registers[m.meter_id][1])
                        for k in range(n)]
            body = wire(self.dep, readings, [m.key] * n)
            sigs = [bytes.fromhex(e["signature"][2:]) for e in body]
            if sigs.index(min(sigs)) == 0:
                self.registers[m.meter_id][0] = readings[0][3]
                return list(zip(readings, body)), 0
        raise AssertionError("no ordering found")


@pytest.fixture
def three_nodes(anvil, tmp_path):
    """make(n_meters) -> (deployment, three node processes at quorum 2, Scenario); all stopped after."""
    started: list[NodeProcess] = []

    def make(n_meters: int) -> tuple[Deployment, list[NodeProcess], Scenario]:
        dep = deploy_settlement(anvil, period_seconds=PERIOD, window=WINDOW, n_operators=3, quorum=2,
                                n_meters=n_meters)
        nodes = start_nodes(tmp_path, dep)
        started.extend(nodes)
        return dep, nodes, Scenario(dep)

    yield make
    for n in started:
        n.stop()


def settle_next_everywhere(dep: Deployment, nodes: list[NodeProcess], sc: Scenario) -> None:
    """The next period, every meter's reading delivered to every node, settles everywhere."""
    p, ts = sc.period()
    pairs = sc.honest(p, ts)
    for n in nodes:
        answer = post(n, [e for _, e in pairs])
        assert len(answer["accepted"]) == len(pairs), (n.name, answer)
    sc.settle(p, pairs)
    assert_settled_everywhere(dep, nodes, sc, p)


def post(node: NodeProcess, entries: list[dict]) -> dict:
    r = httpx.post(node.url + "/v1/readings", json={"readings": entries}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def assert_settled_everywhere(dep: Deployment, nodes: list[NodeProcess], sc: Scenario, p: int) -> None:
    b = wait_status(dep, p, STATUS_FINAL, timeout=60)
    root = expected_root(sc.settled, dep, p, sc.sigs)
    assert (b[0], b[1], b[2], b[3]) == (*root, len(sc.settled[p]))
    group = dep.meters[0].group_id
    for n in nodes:  # each node's archive holds that batch as final, adopted or its own
        deadline = time.time() + 20
        while True:
            a = open_archive(f"sqlite:///{n.db}")
            final = a.final_batch(p, group)
            a.close()
            if final is not None or time.time() > deadline:
                break
            time.sleep(0.3)
        assert final is not None and final.root == b[0], f"{n.name}: period {p} not final in its archive"


def test_a_reading_delivered_to_one_node_only_is_settled_by_all(three_nodes):
    dep, nodes, sc = three_nodes(4)
    p, ts = sc.period()
    pairs = sc.honest(p, ts)
    for n in nodes:
        post(n, [e for r, e in pairs if n is nodes[0] or r[0] != dep.meters[3].meter_id])
    sc.settle(p, pairs)
    assert_settled_everywhere(dep, nodes, sc, p)
    for n in nodes[1:]:
        assert "energy_settlement_node_readings_reconciled_total 1.0" in httpx.get(n.url + "/metrics").text
    settle_next_everywhere(dep, nodes, sc)  # counting from the healed period
    for n in nodes:
        h = httpx.get(n.url + "/healthz", timeout=5)
        assert h.status_code == 200, h.text
        assert h.json()["chain"]["ledger_code"] is True and abs(h.json()["clock_offset_s"]) < 2


def equivocation_evidence(node: NodeProcess, p: int) -> set[frozenset]:
    a = open_archive(f"sqlite:///{node.db}")
    try:
        return {frozenset((e.first.signature, e.second.signature)) for e in a.equivocations(p)
                if e.kind == EQUIVOCATION_SAME_TIME}
    finally:
        a.close()


def run_equivocation(three_nodes, down: bool) -> None:
    dep, nodes, sc = three_nodes(3)
    if down:
        nodes[2].kill()
    alive = nodes[:2] if down else nodes
    p, ts = sc.period()
    pairs = sc.honest(p, ts)[1:]            # meters 1 and 2 honest, delivered everywhere
    forks, winner = sc.equivocation(p, ts, meter=0, n=len(alive))
    for n, fork in zip(alive, forks):
        post(n, [fork[1], *[e for _, e in pairs]])
    sc.settle(p, [forks[winner], *pairs])
    assert_settled_everywhere(dep, alive, sc, p)
    sigs = [bytes.fromhex(e["signature"][2:]) for _, e in forks]
    expected = {frozenset((a, b)) for a in sigs for b in sigs if a != b}
    for n in alive:  # every signed reading of the fork archived as evidence against the key
        assert equivocation_evidence(n, p) == expected, n.name

    # the meter's next honest reading lies below the losing forks: every node accepts it
    if down:
        nodes[2].start()
    settle_next_everywhere(dep, nodes, sc)

    for n in alive:  # the audit over each node's export shows the evidence, the settlement passes
        export = n.db.parent / f"{n.name}-export.jsonl"
        exported = export_archive(f"sqlite:///{n.db}", export)
        assert exported.equivocations == len(audit_shows_the_evidence(dep, export, p, sigs, winner).evidence)
    forged = audit_refuses_forged_evidence(dep, export, forks[winner][0])
    if not down:  # the operator's command: exports, shows the evidence, passes; fails on forged evidence
        mine = alive[0].db.parent / "command-export.jsonl"
        run = ape_audit(dep, alive[0], "--archive", f"sqlite:///{alive[0].db}", "--export", str(mine))
        exported = export_archive(f"sqlite:///{alive[0].db}", alive[0].db.parent / "node-export.jsonl")
        assert run.exit_code == 0, run.output
        assert f"exported {exported.leaves} leaves and {exported.equivocations} equivocation evidence pairs" in run.output
        assert run.output.count("  evidence: period ") == exported.equivocations and ": PASS" in run.output
        doc = json.loads(mine.with_suffix(".findings.json").read_text())
        assert doc["verdict"] == "PASS" and doc["evidence"] == exported.equivocations
        run = ape_audit(dep, alive[0], "--export", str(forged))
        assert run.exit_code == 1 and ": FAIL" in run.output and "no equivocation evidence" in run.output, run.output


class CommandResult(NamedTuple):
    exit_code: int
    output: str


def ape_audit(dep: Deployment, node: NodeProcess, *args: str) -> CommandResult:
    """`ape run audit` as a user runs it (a process of its own: invoked in this process, ape's
    network context would stay on this test's anvil after it stops, and later tests' `chain`
    would point at a dead port) against the test's anvil, with the node's deployment file."""
    argv = [str(Path(sys.executable).parent / "ape"), "run", "audit",
            "--deployment", str(node.db.parent / f"{node.name}.deployment.json"),
            "--network", "ethereum:local:foundry", "--provider-settings", json.dumps({"host": dep.rpc_url}), *args]
    done = subprocess.run(argv, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300)
    return CommandResult(done.returncode, done.stdout + done.stderr)


def audit_of(dep: Deployment, export: Path) -> AuditResult:
    return audit(read_chain(dep.w3, dep.deployment), read_export(export), {dep.meters[0].group_id: dep.group})


def audit_shows_the_evidence(dep: Deployment, export: Path, p: int, sigs: list[bytes], winner: int) -> AuditResult:
    """The forks at one timestamp, and each losing fork against the meter's next (lower) reading."""
    result = audit_of(dep, export)
    assert result.ok and result.verdict == "PASS", result.failures
    meter = "0x" + dep.meters[0].meter_id.hex()
    same = [f for f in result.evidence if f.actual["kind"] == "same_timestamp"]
    pairs = {frozenset((f.actual["first"]["signature"], f.actual["second"]["signature"])) for f in same}
    assert pairs == {frozenset(("0x" + a.hex(), "0x" + b.hex())) for a in sigs for b in sigs if a != b}
    later = [f for f in result.evidence if f.actual["kind"] == "regression"]
    assert len(same) + len(later) == len(result.evidence) and len(later) == len(sigs) - 1
    for f in result.evidence:
        assert (f.kind, f.severity, f.meter, f.name) == ("meter_equivocation", "evidence", meter, dep.group)
        first, second = f.actual["first"], f.actual["second"]
        assert f.period == second["period"] and first["period"] == p  # the period of the reading that revealed it
        if f in same:
            assert first["timestamp"] == second["timestamp"] and first["import_mwh"] != second["import_mwh"]
        else:
            assert first["timestamp"] < second["timestamp"] and first["import_mwh"] > second["import_mwh"]
        assert f.expected["final_leaf"][str(p)]["signature"] == "0x" + sigs[winner].hex()  # the rule's reading
    doc = json.loads(write_findings(result, export.with_suffix(".findings.json")).read_text())
    assert doc["verdict"] == "PASS" and doc["failures"] == 0 and doc["evidence"] == len(result.evidence)
    assert {(f["kind"], f["severity"], f["meter"]) for f in doc["findings"]} == {("meter_equivocation", "evidence",
                                                                                   meter)}
    page = write_report(result, export.parent / f"{export.stem}-report").read_text()
    assert "Verdict: PASS" in page and "Equivocation evidence against meter keys" in page
    assert all("0x" + s.hex()[:16] in page for s in sigs)
    return result


def audit_refuses_forged_evidence(dep: Deployment, export: Path, settled: tuple) -> Path:
    """Entries an operator could forge: a reading altered after the meter signed it, a reading
    signed by another key, two identical readings. Each is a bad export (a failure), never
    evidence against the meter; a genuine pair whose later reading the batch did not settle
    fails the rule check."""
    lines = export.read_text().splitlines()
    evidence = [i for i, line in enumerate(lines) if json.loads(line).get("record") == "equivocation"]
    assert len(evidence) >= 1
    m0, m1 = dep.meters[0], dep.meters[1]

    def forged(entry: dict) -> Path:
        path = export.with_name("forged.jsonl")
        path.write_text("\n".join([*lines, json.dumps(entry)]) + "\n")
        return path

    genuine = json.loads(lines[evidence[0]])
    altered = dict(genuine, second=dict(genuine["second"], import_mwh=genuine["second"]["import_mwh"] + 1000,
                                        import_wh=str(Decimal(genuine["second"]["import_mwh"] + 1000) / 1000)))
    p, ts = settled[1], settled[2]
    [other_key] = wire(dep, [(m0.meter_id, p, ts, settled[3] + 7, settled[4])], [m1.key])  # meter 1's key signs it
    by_other_key = dict(genuine, second=other_key)
    identical = dict(genuine, second=genuine["first"])
    for entry, why in ((altered, "second reading's signature is not by the meter's key of its period"),
                       (by_other_key, "second reading's signature is not by the meter's key of its period"),
                       (identical, "the two readings are identical")):
        result = audit_of(dep, forged(entry))
        assert not result.ok
        [bad] = result.failures
        assert bad.kind == "export_bad_evidence" and bad.severity == "failure" and why in bad.what, bad
        assert bad.meter == "0x" + m0.meter_id.hex() and bad.actual["line"] == len(lines) + 1
        assert len(result.evidence) == len(evidence)  # the genuine pairs only
    # genuinely signed by the meter, later in the period than what the batch settled: the rule
    [later] = wire(dep, [(m0.meter_id, p, ts + 1, settled[3] + 5, settled[4])], [m0.key])
    [earlier] = wire(dep, [(m0.meter_id, p, ts, settled[3] + 9, settled[4])], [m0.key])
    result = audit_of(dep, forged({"record": "equivocation", "kind": "regression", "period": p,
                                   "first": earlier, "second": later}))
    [bad] = result.failures
    assert bad.kind == "equivocation_rule" and bad.expected["signature"] == later["signature"], bad
    assert bad.actual["timestamp"] == ts
    return forged(identical)


def test_a_meter_equivocating_1_1_1_across_the_nodes_settles_by_the_rule(three_nodes):
    run_equivocation(three_nodes, down=False)


def test_an_equivocation_with_one_node_down_settles_and_the_node_catches_up(three_nodes):
    run_equivocation(three_nodes, down=True)


def frozen_through_the_close(node: NodeProcess, p: int, until) -> None:
    """Stops the node's process (SIGSTOP: its port accepts, nothing answers) from just before
    period p closes until `until()` holds, then lets it run on."""
    while time.time() < (p + 1) * PERIOD - 0.5:
        time.sleep(0.05)
    node.proc.send_signal(signal.SIGSTOP)
    try:
        deadline = time.time() + 40
        while not until() and time.time() < deadline:
            time.sleep(0.2)
    finally:
        node.proc.send_signal(signal.SIGCONT)


def metric(node: NodeProcess, name: str) -> float:
    for line in httpx.get(node.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(f"energy_settlement_node_{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in {node.name}'s metrics")


def test_a_peer_unreachable_at_the_close_is_healed_by_a_rebuild(three_nodes):
    """node2 down; node0 alone has meter 0's reading, node1 alone meter 1's, and node0 does not
    answer while node1 closes: the two build different roots, no quorum. node1 compares headers,
    reconciles with node0 again and rebuilds: the period settles with both readings."""
    dep, nodes, sc = three_nodes(3)
    nodes[2].kill()
    group = "0x" + dep.meters[0].group_id.hex()
    p, ts = sc.period()
    pairs = sc.honest(p, ts)
    post(nodes[0], [pairs[0][1], pairs[2][1]])
    post(nodes[1], [pairs[1][1], pairs[2][1]])
    sc.settle(p, pairs)

    def built() -> bool:
        return httpx.get(f"{nodes[1].url}/v1/batches/{p}/{group}/signature", timeout=2).status_code == 200

    frozen_through_the_close(nodes[0], p, built)
    assert_settled_everywhere(dep, nodes[:2], sc, p)
    assert metric(nodes[1], "batches_rebuilt_total") >= 1


def test_a_node_whose_root_lost_yields_to_the_final_batch_and_settles_on(three_nodes):
    """node0 alone has meter 0's reading and does not answer while the others close: they reach
    the quorum without it. node0 builds its own root, yields to the final one (metrics, health)
    and takes part in the next period, which settles everywhere."""
    dep, nodes, sc = three_nodes(3)
    p, ts = sc.period()
    pairs = sc.honest(p, ts)
    post(nodes[0], [e for _, e in pairs])
    for n in nodes[1:]:
        post(n, [e for _, e in pairs[1:]])
    sc.settle(p, pairs[1:])
    frozen_through_the_close(nodes[0], p, lambda: dep.batch(p, dep.meters[0].group_id)[5] >= 1)
    assert_settled_everywhere(dep, nodes, sc, p)
    deadline = time.time() + 20
    while metric(nodes[0], "batches_yielded_total") < 1 and time.time() < deadline:
        time.sleep(0.3)
    assert metric(nodes[0], "batches_yielded_total") == 1
    settle_next_everywhere(dep, nodes, sc)  # meter 0's next reading carries its registers on
    h = httpx.get(nodes[0].url + "/healthz", timeout=5).json()
    assert h["periods_waiting_quorum"] == [] and h["cosigning"]["final_periods"] == 2
    assert h["cosigning"]["own_root"] == 1  # its root lost period p, made period p2
