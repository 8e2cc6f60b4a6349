"""Data availability end to end with node processes on anvil: two colluding operators (quorum 2
of 3) commit a batch and withhold its leaves; the honest node, which no peer serves them, challenges
it, nobody reveals, and it rejects the batch. An honest batch that is challenged is revealed by
its co-signers automatically and finalizes."""
from __future__ import annotations

import time

import pytest
from eth_account import Account
from node_harness import NodeProcess, deploy_settlement
from test_node_three_nodes import Feeder, start_nodes, wait_status

import rust_core
from devnet.ports import free_port
from node.chain import STATUS_PENDING, Chain
from rust_core.wire import BatchHeader

pytestmark = pytest.mark.chain

PERIOD = 8
WINDOW = 6  # also the response time (scripts/_deployment.py)
REASON_WITHHELD = 12
STATUS_FINAL, STATUS_REJECTED = 2, 3


def test_withheld_batch_is_challenged_and_rejected_by_the_honest_node(anvil, tmp_path):
    now_p = int(time.time()) // PERIOD
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=WINDOW, n_operators=3, quorum=2, n_meters=3,
                            active_from=now_p - 4)
    colluders, honest_key = dep.operator_keys[:2], dep.operator_keys[2]
    # the colluders serve nothing: their peer URLs point at ports nobody listens on
    honest = NodeProcess(tmp_path, "honest", dep, honest_key, free_port(),
                         [f"http://127.0.0.1:{free_port()}" for _ in colluders], grace=1.0, takeover=1.5)
    honest.start()
    try:
        period, group = now_p - 2, dep.meters[0].group_id
        readings = [(m.meter_id, period, period * PERIOD + 2, m.baseline[0] + 9_000_000, m.baseline[1])
                    for m in sorted(dep.meters, key=lambda m: m.meter_id)]
        sigs = rust_core.sign_readings(dep.domain, readings, [m.key for m in sorted(dep.meters, key=lambda m: m.meter_id)])
        leaves = [(*r, now_p - 5, *m.baseline, s) for r, m, s in
                  zip(readings, sorted(dep.meters, key=lambda m: m.meter_id), sigs)]
        root = rust_core.MerkleSumTree(leaves).root
        chain = Chain(dep.rpc_url, dep.registry, dep.ledger, colluders[0])
        header = (period, group, root[0], root[1], root[2], len(leaves), chain.operator_set().epoch)
        digest = rust_core.batch_digest(dep.domain, header)
        ordered = sorted(colluders, key=lambda k: Account.from_key(k).address.lower())
        chain.submit_batch(header, [Chain(dep.rpc_url, dep.registry, dep.ledger, k).signer.sign_digest(digest)
                                    for k in ordered])
        assert chain.get_batch(period, group).status == STATUS_PENDING

        b = wait_status(dep, period, STATUS_REJECTED, timeout=4 * WINDOW + 20)
        ledger = dep.ledger_contract()
        challenged = ledger.events.AvailabilityChallenged().get_logs(from_block=0)
        assert [bytes.fromhex(e.args.challenger[2:]) for e in challenged] == [honest.address]
        rejected = ledger.events.BatchRejected().get_logs(from_block=0)
        assert [(e.args.reason, bytes.fromhex(e.args.prover[2:])) for e in rejected] == [
            (REASON_WITHHELD, honest.address)]
        assert b[0] == root[0]
        assert not ledger.events.LeavesRevealed().get_logs(from_block=0)
    finally:
        honest.stop()


def test_challenged_honest_batch_is_revealed_by_its_cosigners_and_finalizes(anvil, tmp_path):
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=WINDOW, n_operators=3, quorum=2, n_meters=4)
    nodes = start_nodes(tmp_path, dep)
    feeder = Feeder(dep)
    try:
        p = feeder.deliver(nodes)
        wait_status(dep, p, STATUS_PENDING, timeout=30)
        group = dep.meters[0].group_id
        # a meter operator (the admin) doubts the batch: the co-signers must reveal it
        dep.admin.transact("PeriodLedger", dep.ledger, "challengeAvailability", p, group)
        b = wait_status(dep, p, STATUS_FINAL, timeout=4 * WINDOW + 30)
        ledger = dep.ledger_contract()
        revealed = ledger.events.BatchRevealed().get_logs(from_block=0)
        assert len(revealed) == 1 and revealed[0].args.period == p
        assert bytes.fromhex(revealed[0].args.revealer[2:]) in {n.address for n in nodes}
        assert not ledger.events.BatchRejected().get_logs(from_block=0)
        assert b[3] == 4
    finally:
        for n in nodes:
            n.stop()


def test_an_honest_batch_rejected_unrevealed_is_submitted_again_and_finalizes(anvil, tmp_path):
    """Every co-signer is down while the batch is challenged, so nobody reveals it in time and it
    is rejected unrevealed (not proven false: its header is not banned). Back up, the nodes submit
    the same header again, reveal it if asked, and it finalizes; the next period follows."""
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=WINDOW, n_operators=3, quorum=2, n_meters=3)
    nodes = start_nodes(tmp_path, dep)
    feeder = Feeder(dep)
    group = dep.meters[0].group_id
    ledger = dep.ledger_contract()
    try:
        p = feeder.deliver(nodes)
        first = wait_status(dep, p, STATUS_PENDING, timeout=30)
        for n in nodes:
            n.kill()  # the whole consortium down within the challenge window
        dep.admin.transact("PeriodLedger", dep.ledger, "challengeAvailability", p, group)
        (challenge,) = ledger.events.AvailabilityChallenged().get_logs(from_block=0)
        while time.time() <= challenge.args.respondBy + 1:
            time.sleep(0.3)
        # a fixed gas: an estimate would run in the latest block, mined before the response time ended
        dep.admin.transact("PeriodLedger", dep.ledger, "rejectUnrevealed", p, group, gas=300_000)
        assert dep.batch(p, group)[5] == STATUS_REJECTED
        content = BatchHeader.of_root(p, group, first[:3], first[3], 0).content_hash()
        assert not ledger.functions.headerRejected(content).call()

        for n in nodes:
            n.start()
        again = wait_status(dep, p, STATUS_FINAL, timeout=4 * WINDOW + 30)
        assert again[:4] == first[:4]  # the same batch, a second submission
        assert ledger.functions.submissionNumber(p, group).call() == 1
        assert [(e.args.period, e.args.reason) for e in ledger.events.BatchRejected().get_logs(from_block=0)] == [
            (p, REASON_WITHHELD)]
        following = feeder.deliver(nodes)
        wait_status(dep, following, STATUS_FINAL, timeout=4 * WINDOW + 30)
        assert "rejected without a ban; submitting it again" in "".join(n.log.read_text() for n in nodes)
    finally:
        for n in nodes:
            n.stop()
