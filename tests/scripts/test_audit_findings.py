"""The audit's machine-readable findings file and provenance, and the report's time axis, on
audit results built here (the end-to-end run on a settled chain is in test_demo_and_audit.py)."""
from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pytest

from node.chain import OperatorSet
from scripts._audit import (
    FINDING_KINDS,
    AuditResult,
    ChainView,
    FinalBatch,
    Finding,
    GridRecord,
    PeriodFigures,
    Provenance,
    audit,
    write_findings,
)
from scripts._report import _balance_plot, _energy_plot, write_report

PERIOD_S = 900
FIRST = 1_959_464  # 2025-11-19 02:00 UTC
PERIODS = range(FIRST, FIRST + 4)
METER = "0x" + "ab" * 32


def view() -> ChainView:
    grid = GridRecord("street", "0x" + "33" * 20, b"\x00" * 32, 0, [])
    return ChainView({}, {}, [grid], [], PERIOD_S, b"\x00" * 32, 31337, "0x" + "11" * 20, "0x" + "22" * 20, (7, 42))


def result(findings: list[Finding], provenance: Provenance | None = None) -> AuditResult:
    periods = {p: PeriodFigures(groups={"street-a": (1_000_000 * (p - FIRST), 2_000_000)},
                                grids={"street": {"injected": 1, "withdrawn": 2, "imbalance": 0, "losses": 0,
                                                  "localAllocated": 1}})
               for p in PERIODS}
    return AuditResult(findings, periods, 4, 12, [], PERIOD_S, provenance)


@pytest.fixture
def export(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_text('{"period": 1}\n')
    return path


def test_provenance_records_chain_contracts_blocks_export_hash_version_and_time(export):
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    prov = Provenance.of(view(), export, now=at)
    assert (prov.chain_id, prov.registry, prov.ledger) == (31337, "0x" + "11" * 20, "0x" + "22" * 20)
    assert prov.grids == {"street": "0x" + "33" * 20}
    assert (prov.from_block, prov.to_block) == (7, 42)
    assert prov.export_sha256 == hashlib.sha256(b'{"period": 1}\n').hexdigest()
    assert prov.audited_at == "2026-01-02T03:04:05+00:00"
    assert prov.software_version and prov.software_version[0].isdigit()
    # another export is another audit
    export.write_text('{"period": 2}\n')
    assert Provenance.of(view(), export, now=at).export_sha256 != prov.export_sha256


def test_findings_file_names_period_scope_meter_kind_expected_and_actual(export, tmp_path):
    bad = [
        Finding(FIRST + 1, "group", "street-a", METER, "signature", "signed by the registered key 0x" + "44" * 20,
                "signer 0x55 is not the meter's key", "signature: signer 0x55 is not the meter's key"),
        Finding(FIRST + 2, "grid", "street", None, "allocation", {(b"\x01", b"\x02"): 5}, {}, "allocation differs"),
    ]
    path = write_findings(result(bad, Provenance.of(view(), export)), tmp_path / "out" / "findings.json")
    doc = json.loads(path.read_text())
    assert doc["verdict"] == "FAIL" and doc["final_batches"] == 4 and doc["readings"] == 12
    assert doc["provenance"]["chain_id"] == 31337 and doc["provenance"]["to_block"] == 42
    first, second = doc["findings"]
    assert first == {"period": FIRST + 1, "period_start": "2025-11-19T02:15:00+00:00", "scope": "group",
                     "name": "street-a", "meter": METER, "kind": "signature", "severity": "failure",
                     "expected": "signed by the registered key 0x" + "44" * 20,
                     "actual": "signer 0x55 is not the meter's key",
                     "what": "signature: signer 0x55 is not the meter's key"}
    # values that are not JSON as they stand (bytes, tuple keys) are written as hex
    assert second["scope"] == "grid" and second["meter"] is None
    assert second["expected"] == {"0x01->0x02": 5} and second["actual"] == {}
    assert doc["periods"][str(FIRST)] == "2025-11-19T02:00:00+00:00"


def test_a_clean_audit_writes_pass_and_no_findings(tmp_path):
    doc = json.loads(write_findings(result([]), tmp_path / "f.json").read_text())
    assert doc["verdict"] == "PASS" and doc["findings"] == [] and doc["provenance"] is None


def test_equivocation_evidence_is_shown_without_failing_the_audit(tmp_path):
    reading = {"meter_id": METER, "period": FIRST, "timestamp": FIRST * PERIOD_S, "import_mwh": 5, "export_mwh": 0,
               "signature": "0x" + "aa" * 65}
    evidence = Finding(FIRST, "group", "street-a", METER, "meter_equivocation",
                       {"rule": "latest timestamp, then lowest signature", "final_leaf": {str(FIRST): reading}},
                       {"kind": "same_timestamp", "first": reading, "second": dict(reading, import_mwh=6)},
                       "the meter key signed two conflicting readings")
    ok = result([evidence])
    assert ok.ok and ok.verdict == "PASS" and ok.evidence == [evidence] and ok.failures == []
    doc = json.loads(write_findings(ok, tmp_path / "f.json").read_text())
    assert (doc["verdict"], doc["failures"], doc["evidence"]) == ("PASS", 0, 1)
    assert doc["findings"][0]["severity"] == "evidence" and doc["findings"][0]["actual"]["second"]["import_mwh"] == 6
    text = write_report(ok, tmp_path / "report").read_text()
    assert "Verdict: PASS" in text and "Equivocation evidence against meter keys" in text and "0x" + "aa" * 8 in text
    # a bad export entry is a failure
    bad = Finding(FIRST, "group", "street-a", METER, "export_bad_evidence", "two conflicting readings", {}, "forged")
    assert bad.severity == "failure" and result([evidence, bad]).verdict == "FAIL"
    assert "FAIL (1 findings)" in write_report(result([evidence, bad]), tmp_path / "r2").read_text()


def test_a_finding_of_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="'rooot' is not one of FINDING_KINDS"):
        Finding(FIRST, "group", "g", None, "rooot", 1, 2, "typo")
    assert "root" in FINDING_KINDS


@pytest.mark.parametrize("plot", [_energy_plot, _balance_plot])
def test_plots_are_over_period_start_times_in_utc(plot):
    fig, ax = plt.subplots()
    try:
        plot(ax, result([]), list(PERIODS))
        fig.canvas.draw()
        starts = [datetime.fromtimestamp(p * PERIOD_S, UTC) for p in PERIODS]
        series = [line for line in ax.get_lines() if len(line.get_xdata()) == len(starts)]  # not the zero line
        assert series
        for line in series:
            assert list(mdates.date2num(line.get_xdata())) == list(mdates.date2num(starts))
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert labels and all(len(t) == 5 and t[2] == ":" for t in labels), labels  # HH:MM clock time
        assert "02:00" in labels or "02:15" in labels
        assert ax.get_xlabel() == "period start (UTC on 2025-11-19)"
    finally:
        plt.close(fig)


def test_report_page_shows_provenance_and_period_start_times(export, tmp_path):
    page = write_report(result([], Provenance.of(view(), export)), tmp_path / "report")
    text = page.read_text()
    assert "<h2>Provenance</h2>" in text and hashlib.sha256(export.read_bytes()).hexdigest() in text
    assert "Metering points" not in text  # no point settled
    assert "<th>chain id</th><td>31337</td>" in text and "street 0x" + "33" * 20 in text
    assert f"<td>{FIRST}</td><td>2025-11-19 02:00:00</td>" in text


def test_report_page_shows_each_metering_points_energy(tmp_path):
    settled = result([])
    settled.point_energy = {b"\x01" * 32: (2_500_000, 0), b"\x02" * 32: (0, 1_250_000)}
    text = write_report(settled, tmp_path / "report").read_text()
    assert "<h2>Metering points (all periods)</h2>" in text
    assert f"<tr><td>0x{'01' * 32}</td><td>2.500</td><td>0.000</td></tr>" in text
    assert f"<tr><td>0x{'02' * 32}</td><td>0.000</td><td>1.250</td></tr>" in text


OPS = [bytes([i]) * 20 for i in (1, 2, 3)]
GROUP = b"\x0a" * 32


def quorum_findings(signers, epoch: int = 4) -> list[Finding]:
    """The batch_quorum findings of one final batch of `epoch` signed by `signers` (epoch 4: 2 of OPS)."""
    v = view()
    v.epochs = {4: OperatorSet(4, OPS, 2), 5: OperatorSet(5, OPS[1:], 2)}
    v.finals = {(FIRST, GROUP): FinalBatch(FIRST, GROUP, b"\x01" * 32, 0, 0, 0, 9, epoch, signers)}
    return [f for f in audit(v, {}).findings if f.kind == "batch_quorum"]


def test_a_batch_signed_by_the_quorum_of_its_epoch_passes():
    assert quorum_findings((OPS[0], OPS[2])) == []
    assert quorum_findings(tuple(OPS)) == []
    assert quorum_findings((OPS[1], OPS[2]), epoch=5) == []


@pytest.mark.parametrize(("signers", "epoch", "problem"), [
    ((OPS[0], OPS[1]), 5, f"signed by 0x{OPS[0].hex()}, not operator\\(s\\) of epoch 5"),  # left in epoch 5
    ((OPS[0], b"\x09" * 20), 4, f"signed by 0x{'09' * 20}, not operator"),
    ((OPS[0],), 4, "1 signature\\(s\\), the quorum of epoch 4 is 2"),
    ((OPS[1], OPS[1]), 4, "not distinct and ascending"),
    ((OPS[2], OPS[0]), 4, "not distinct and ascending"),
    ((OPS[0], OPS[1]), 6, "epoch 6 was never started in the registry"),
    (None, 4, "no submitBatch call to the ledger: the signatures cannot be read"),
])
def test_a_batch_not_signed_by_the_quorum_of_its_epoch_is_a_finding(signers, epoch, problem):
    (finding,) = quorum_findings(signers, epoch)
    assert finding.severity == "failure" and finding.period == FIRST
    assert re.search(problem, finding.what), finding.what
    assert finding.actual == (None if signers is None else ["0x" + s.hex() for s in signers])


def test_a_final_batch_whose_header_was_banned_is_a_finding():
    v = view()
    v.epochs = {4: OperatorSet(4, OPS, 2)}
    fb = FinalBatch(FIRST, GROUP, b"\x01" * 32, 5, 6, 1, 9, 4, (OPS[0], OPS[1]))
    v.finals = {(FIRST, GROUP): fb}
    assert [f.kind for f in audit(v, {}).findings] == ["export_missing_batch"]
    v.banned_headers = {(FIRST, GROUP, fb.root, 5, 6, 1)}
    (banned,) = [f for f in audit(v, {}).findings if f.kind == "rejected_header_final"]
    assert banned.actual == "0x" + "01" * 32 and "banned" in banned.what
