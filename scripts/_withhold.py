"""The demo's withholding attack (`ape run demo --withhold`): two of the three operators, a
quorum, co-sign and submit a batch whose leaves they give nobody, then try to finalize it. The
nodes, which no peer serves those leaves, must challenge its data availability within the
window, and reject it once the response time has passed unrevealed (BatchRejected reason 12)."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import rust_core
from node.signer import LocalKeySigner
from rust_core.wire import group_id
from scripts._deployment import Deployment

WITHHELD_GROUP = "demo:withheld"


@dataclass(frozen=True)
class WithholdOutcome:
    period: int
    group_id: bytes
    root: bytes
    reason: int | None  # the BatchRejected reason, None if it was never rejected
    finalized: bool     # the colluders' finalize went through (the attack worked)


def withhold_attack(project, chain, dep: Deployment, colluders, echo=print,
                    timeout_s: float = 60.0) -> WithholdOutcome:
    """Submits the colluders' batch (1,000 kWh for two meters nobody registered) and waits for the
    nodes' answer, the colluders calling finalize every second meanwhile."""
    ledger = project.PeriodLedger.at(dep.ledger)
    group = group_id(WITHHELD_GROUP)
    period = int(time.time()) // dep.period_seconds - 1
    ids = sorted(secrets.token_bytes(32) for _ in range(2))
    leaves = [(mid, period, period * dep.period_seconds + 1, 500_000_000, 0, period - 1, 0, 0, secrets.token_bytes(65))
              for mid in ids]
    root = rust_core.MerkleSumTree(leaves).root
    header = (period, group, root[0], root[1], root[2], len(leaves),
              project.MeterRegistry.at(dep.registry).operatorEpoch())
    digest = rust_core.batch_digest(rust_core.domain_separator(dep.chain_id, bytes.fromhex(dep.ledger[2:])), header)
    ordered = sorted(colluders, key=lambda a: a.address.lower())
    sigs = [LocalKeySigner(bytes.fromhex(a.private_key[2:])).sign_digest(digest) for a in ordered]
    ledger.submitBatch(header, sigs, sender=ordered[0])
    echo(f"withhold: operators {', '.join(a.address[:10] for a in ordered)} submitted period {period} of group "
         f"{WITHHELD_GROUP} (root 0x{root[0].hex()[:16]}, {root[1] / 1e6:,.0f} kWh) and publish no leaves")
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = ledger.getBatch(period, group).status
        if status == 3:
            break
        if status == 2:
            echo("withhold: the colluders' batch FINALIZED: nobody challenged it in time")
            return WithholdOutcome(period, group, root[0], None, True)
        try:
            ledger.finalize(period, group, sender=ordered[0])
        except Exception as e:  # noqa: BLE001 (the revert is the point: reported below)
            echo(f"withhold: colluders' finalize refused: {str(e).splitlines()[0][:80]}")
        time.sleep(1.0)
    rejected = [e for e in ledger.BatchRejected.range(0, chain.blocks.head.number + 1)
                if e.period == period and bytes(e.groupId) == group]
    reason = rejected[-1].reason if rejected else None
    challenged = [e for e in ledger.AvailabilityChallenged.range(0, chain.blocks.head.number + 1)
                  if e.period == period and bytes(e.groupId) == group]
    who = f" challenged by {challenged[0].challenger[:10]}" if challenged else ""
    echo(f"withhold: batch of period {period}{who}, "
         + (f"rejected with reason {reason} (12: leaves withheld)" if rejected else "NOT rejected"))
    return WithholdOutcome(period, group, root[0], reason, False)
