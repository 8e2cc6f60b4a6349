"""The neighbourhood demo end to end (a short day), then the audit against a tampered archive
and the challenge script against a lying batch, on the chain the demo settled."""
from __future__ import annotations

import json
import time

import pytest
import rust_core

from scripts._audit import audit, read_chain, read_export
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

    result = audit(read_chain(chain.provider.web3, dep), read_export(tampered), _names(dep))
    assert not result.ok
    named = [f for f in result.findings if f.meter == victim["meter_id"] and f.period == victim["period"]]
    assert any("signature" in f.what for f in named), result.findings
    assert any(f.period == victim["period"] and "root" in f.what for f in result.findings)


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
    header = (period, group, tree.root[0], tree.root[1], tree.root[2], len(lie))
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
    assert ledger.headerRejected(ledger.headerHash(header))
