"""The challenger: checks every batch still in its challenge window against an operator's own
archive, using the committed batch's leaves (from the submitting node's API or an export), and
sends the fraud proof that rejects it. Fraud proofs are open to anyone; the proof itself is
chosen by the node's own checker (node/fraud.py), so nodes and this script prove alike."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx

from node.archive import open_archive
from node.chain import STATUS_PENDING, Chain
from node.fraud import FraudProof, find_fraud
from node.peers import fetch_leaves
from node.registry import RegistryView
from rust_core.wire import Leaf
from scripts._deployment import Deployment


@dataclass(frozen=True)
class Outcome:
    period: int
    group_id: bytes
    root: bytes
    verdict: str  # "proved: <function> (<what>)", or why nothing was sent


def leaves_from_node(url: str, period: int, group_id: bytes, root: bytes) -> list[Leaf] | None:
    with httpx.Client(timeout=10) as client:
        return fetch_leaves(client, url, period, group_id, root)


def challenge(rpc_url: str, dep: Deployment, archive_url: str, leaves_of, send) -> list[Outcome]:
    """`leaves_of(period, group_id, root)` gives a committed batch's leaves (or None);
    `send(function, args)` sends one PeriodLedger prove* transaction."""
    chain = Chain(rpc_url, dep.registry, dep.ledger, secrets.token_bytes(32))  # reads only
    registry = RegistryView(chain)
    archive = open_archive(archive_url)
    outcomes = []
    try:
        submitted = [a for name, a, _ in chain.ledger_events(dep.first_block, chain.block_number())
                     if name == "BatchSubmitted"]
        for a in submitted:
            period, group, root = a["period"], bytes(a["groupId"]), bytes(a["root"])
            onchain = chain.get_batch(period, group)
            if onchain.status != STATUS_PENDING or onchain.root != root:
                continue
            leaves = leaves_of(period, group, root)
            if leaves is None:
                outcomes.append(Outcome(period, group, root, "no leaves available for this root"))
                continue
            verdict = find_fraud(leaves, onchain, period, group, registry, archive, chain.domain_separator,
                                 chain.period_seconds)
            if isinstance(verdict, FraudProof):
                send(verdict.function, verdict.args)
                outcomes.append(Outcome(period, group, root, f"proved: {verdict.function} ({verdict.what})"))
            else:
                outcomes.append(Outcome(period, group, root, f"not challenged: {verdict}"))
    finally:
        archive.close()
    return outcomes
