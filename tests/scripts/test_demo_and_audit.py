"""The neighbourhood demo end to end (a short day), then the audit against a tampered archive
and the challenge script against a lying batch, on the chain the demo settled."""
from __future__ import annotations

import hashlib
import json
import time
import traceback

import pytest

import rust_core
from rust_core import reference as ref
from scripts._audit import Provenance, audit, read_chain, read_export, write_findings
from scripts._challenge import challenge
from scripts._demo import DemoOptions, NeighbourhoodDemo
from scripts._deployment import Deployment, group_id

PERIODS = 3


@pytest.fixture(scope="module")
def demo(wall_clock, project, chain, accounts, tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    options = DemoOptions(households=6, periods=PERIODS, period_seconds=3, challenge_window_seconds=4,
                          start_hour=11, workdir=work)
    code = NeighbourhoodDemo(project, chain, accounts, options, echo=lines.append).run()
    return code, lines, work, Deployment.load(work / "deployment.json")


def _batch_of(leaf: dict) -> tuple[int, str, str]:
    return leaf["period"], leaf["group_id"], leaf["root"]


def _names(dep: Deployment) -> dict[bytes, str]:
    return {bytes.fromhex(gid[2:]): name for name, gid in dep.groups.items()}


def test_every_period_settles_and_the_audit_passes(demo, chain):
    code, lines, work, dep = demo
    assert code == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert f"periods settled        {PERIODS} of {PERIODS}" in text
    assert "audit                  PASS" in text
    for name in ("index.html", "energy.png", "balance.png", "self_sufficiency.png", "origin.png"):
        assert (work / "report" / name).stat().st_size > 0
    assert "Verdict: PASS" in (work / "report" / "index.html").read_text()
    # the findings file: none, and the provenance of what was read
    doc = json.loads((work / "report" / "findings.json").read_text())
    assert doc["verdict"] == "PASS" and doc["findings"] == []
    prov = doc["provenance"]
    assert (prov["chain_id"], prov["registry"], prov["ledger"]) == (chain.chain_id, dep.registry, dep.ledger)
    assert prov["grids"] == dep.grids and prov["from_block"] == dep.first_block
    assert dep.first_block < prov["to_block"] <= chain.blocks.head.number
    assert prov["export_sha256"] == hashlib.sha256((work / "archive-export.jsonl").read_bytes()).hexdigest()
    # every group of every settled period is final on chain and both grids rolled it up
    result = audit(read_chain(chain.provider.web3, dep), read_export(work / "archive-export.jsonl"), _names(dep))
    assert result.ok and len(result.periods) >= PERIODS
    rolled = [p for p, f in result.periods.items() if set(f.grids) == {"sonnenweg", "district"}]
    assert len(rolled) == PERIODS


def test_a_reading_tampered_after_finalization_fails_the_audit_naming_it(demo, chain, tmp_path):
    _, _, work, dep = demo
    lines = (work / "archive-export.jsonl").read_text().splitlines()
    victim = json.loads(lines[len(lines) // 2])
    victim["import_mwh"] += 1000  # one watt-hour more than the meter signed
    lines[len(lines) // 2] = json.dumps(victim)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")

    view = read_chain(chain.provider.web3, dep)
    result = audit(view, read_export(tampered), _names(dep), Provenance.of(view, tampered))
    assert not result.ok
    named = [f for f in result.findings if f.meter == victim["meter_id"] and f.period == victim["period"]]
    assert any(f.kind == "signature" for f in named), result.findings
    assert any(f.period == victim["period"] and f.kind == "root" for f in result.findings)
    doc = json.loads(write_findings(result, tmp_path / "findings.json").read_text())
    assert doc["verdict"] == "FAIL"
    assert doc["provenance"]["export_sha256"] == hashlib.sha256(tampered.read_bytes()).hexdigest()
    [root] = [f for f in doc["findings"] if f["kind"] == "root" and f["period"] == victim["period"]]
    on_chain = {f"0x{b.root.hex()}" for (p, _), b in view.finals.items() if p == victim["period"]}
    assert root["scope"] == "group" and root["actual"] in on_chain and root["expected"] != root["actual"]
    [sig] = [f for f in doc["findings"] if f["kind"] == "signature" and f["meter"] == victim["meter_id"]]
    assert sig["period"] == victim["period"] and sig["expected"].startswith("signed by the registered key 0x")


def test_ape_run_audit_writes_the_findings_file_and_exits_by_the_verdict(demo, chain, tmp_path):
    from click.testing import CliRunner

    from scripts.audit import cli

    _, _, work, dep = demo
    export = work / "archive-export.jsonl"
    # connected to the anvil the demo settled on (without a host, ape would start a fresh one)
    args = ["--deployment", str(work / "deployment.json"), "--network", "ethereum:local:foundry",
            "--provider-settings", json.dumps({"host": chain.provider.uri})]
    run = CliRunner().invoke(cli, [*args, "--export", str(export), "--report", str(tmp_path / "report")])
    assert run.exit_code == 0, run.output + "".join(traceback.format_exception(*run.exc_info))
    assert "UTC): ok" in run.output and f"findings: {tmp_path / 'report' / 'findings.json'}" in run.output
    doc = json.loads((tmp_path / "report" / "findings.json").read_text())
    assert doc["verdict"] == "PASS" and doc["provenance"]["ledger"] == dep.ledger

    lines = export.read_text().splitlines()
    finals = {(p, "0x" + b.group_id.hex(), "0x" + b.root.hex())
              for (p, _), b in read_chain(chain.provider.web3, dep).finals.items()}
    # a leaf of a final batch (the export holds every batch the node built)
    i = next(i for i, line in enumerate(lines) if _batch_of(json.loads(line)) in finals)
    victim = json.loads(lines[i])
    victim["import_mwh"] += 1000
    lines[i] = json.dumps(victim)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    run = CliRunner().invoke(cli, [*args, "--export", str(tampered)])
    assert run.exit_code == 1, run.output
    doc = json.loads(tmp_path.joinpath("tampered.findings.json").read_text())
    assert doc["verdict"] == "FAIL" and {"signature", "root"} <= {f["kind"] for f in doc["findings"]}


def test_a_lying_batch_is_challenged_and_rejected_by_the_script(demo, project, chain, accounts):
    _, _, work, dep = demo
    ledger = project.PeriodLedger.at(dep.ledger)
    group = group_id("sonnenweg-a")
    export = read_export(work / "archive-export.jsonl")
    last = ledger.lastFinalPeriod(group)
    final_root = bytes(ledger.getBatch(last, group).root)
    previous = export[(last, group, final_root)]

    # Two colluding operators (quorum 2 of 3) commit a period in which one reading was altered
    # after its meter signed it: the signatures are the meters' real ones, over other values.
    period = int(time.time() // dep.period_seconds) + 1
    lie = []
    for i, leaf in enumerate(previous):
        meter, _, _, imp, exp, _, _, _, sig = leaf
        lie.append((meter, period, period * dep.period_seconds, imp + (5000 if i == 0 else 0), exp, last, imp, exp, sig))
    tree = rust_core.MerkleSumTree(lie)
    header = (period, group, tree.root[0], tree.root[1], tree.root[2], len(lie),
              project.MeterRegistry.at(dep.registry).operatorEpoch())
    liars = sorted(accounts[1:3], key=lambda a: int(a.address, 16))
    digest = rust_core.batch_digest(rust_core.domain_separator(chain.chain_id, bytes.fromhex(dep.ledger[2:])), header)
    signatures = [rust_core.sign_digest(digest, bytes.fromhex(a.private_key[2:])) for a in liars]
    while chain.pending_timestamp < (period + 1) * dep.period_seconds:
        time.sleep(0.5)
    ledger.submitBatch(header, signatures, sender=liars[0])
    assert ledger.getBatch(period, group).status == 1

    anyone = accounts[7]
    outcomes = challenge(chain.provider.uri, dep, f"sqlite:///{work / 'node-b.db'}",
                         lambda p, g, r: lie if (p, g, r) == (period, group, tree.root[0]) else None,
                         lambda fn, args: getattr(ledger, fn)(*args, sender=anyone))
    proved = [o for o in outcomes if o.period == period and o.group_id == group]
    assert len(proved) == 1 and proved[0].verdict.startswith("proved: proveBadSignature"), outcomes
    assert ledger.getBatch(period, group).status == 3
    assert ledger.headerRejected(ref.BatchHeader(*header).content_hash())
