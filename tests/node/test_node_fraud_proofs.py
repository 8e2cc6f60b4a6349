"""find_fraud against batches committed on a real ledger: each kind of lie is named with the
proof the ledger accepts (the batch ends rejected), and an honest batch yields no proof."""
from __future__ import annotations

import secrets
import time

import pytest
import rust_core
from node_harness import deploy_settlement

from node.archive import BATCH_BUILT, BATCH_FINAL, BatchRecord, open_archive
from node.chain import STATUS_REJECTED, Chain
from node.fraud import FraudProof, find_fraud, sum_tree
from node.registry import RegistryView

pytestmark = pytest.mark.chain
PERIOD = 10
WINDOW = 100


@pytest.fixture
def world(anvil, tmp_path):
    now_p = int(time.time()) // PERIOD
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=WINDOW, n_operators=1, quorum=1, n_meters=3,
                            active_from=now_p - 10)
    chain = Chain(dep.rpc_url, dep.registry, dep.ledger, dep.operator_keys[0])
    archive = open_archive(f"sqlite:///{tmp_path / 'a.db'}")
    registry = RegistryView(chain)
    registry.refresh()
    yield dep, chain, archive, registry, now_p
    archive.close()


def leaf(dep, i: int, period: int, imp: int, prev: tuple, key: bytes | None = None, meter_id: bytes | None = None):
    m = dep.meters[i]
    mid = meter_id or m.meter_id
    r = (mid, period, period * PERIOD + 3, imp, m.baseline[1])  # export register stands still
    sig = rust_core.sign_readings(dep.domain, [r], [key or m.key])[0]
    return (*r, *prev, sig)


def commit(chain: Chain, period: int, group: bytes, leaves: list[tuple]) -> tuple:
    root = sum_tree(leaves).root
    header = (period, group, root[0], root[1], root[2], len(leaves))
    sig = chain.signer.sign_digest(rust_core.batch_digest(chain.domain_separator, header))
    chain.submit_batch(header, [sig])
    return header


def baseline(dep, i: int) -> tuple:
    return (dep.meters[i].active_from - 1, *dep.meters[i].baseline)


def test_each_lie_is_proven_and_an_honest_batch_is_not(world):
    dep, chain, archive, registry, now_p = world
    group = dep.meters[0].group_id
    by_id = sorted(range(3), key=lambda i: dep.meters[i].meter_id)
    a, b, c = by_id  # meters in ascending id order

    # Period A final with meters a and b (not c), as the node keeps it.
    pa = now_p - 8
    final_leaves = [leaf(dep, a, pa, 2_000_000, baseline(dep, a)), leaf(dep, b, pa, 2_000_000, baseline(dep, b))]
    h = commit(chain, pa, group, final_leaves)
    dep.w3.provider.make_request("evm_increaseTime", [WINDOW + 1])
    chain.finalize(pa, group)
    archive.save_batch(BatchRecord(*h, own=False, signature=None, status=BATCH_BUILT, tx_hash=None, gas_used=None),
                       final_leaves)
    archive.set_batch_status(pa, group, h[2], BATCH_FINAL)

    pb = now_p - 6
    def after_a(i: int) -> tuple:
        return (pa, 2_000_000, dep.meters[i].baseline[1])

    honest = [leaf(dep, a, pb, 2_100_000, after_a(a)), leaf(dep, b, pb, 2_100_000, after_a(b)),
              leaf(dep, c, pb, 2_100_000, baseline(dep, c))]
    lies = {
        "proveOutOfOrder": [honest[1], honest[0], honest[2]],
        "proveUnknownMeter": [*honest[:2], leaf(dep, c, pb, 2_100_000, baseline(dep, c), key=secrets.token_bytes(32),
                                                meter_id=b"\xff" * 32)],
        "proveBadSignature": [honest[0], leaf(dep, b, pb, 2_100_000, after_a(b), key=secrets.token_bytes(32)), honest[2]],
        "proveBadPrevious": [leaf(dep, a, pb, 2_100_000, baseline(dep, a)), *honest[1:]],
        "proveMissingPrevious": [*honest[:2], leaf(dep, c, pb, 2_100_000, (pa, *dep.meters[c].baseline))],
    }
    for function, leaves in lies.items():
        commit(chain, pb, group, leaves)
        verdict = find_fraud(leaves, chain.get_batch(pb, group), pb, group, registry, archive, chain.domain_separator,
                             PERIOD)
        assert isinstance(verdict, FraudProof) and verdict.function == function, (function, verdict)
        chain.prove(verdict.function, *verdict.args)
        assert chain.get_batch(pb, group).status == STATUS_REJECTED, function

    commit(chain, pb, group, honest)
    verdict = find_fraud(honest, chain.get_batch(pb, group), pb, group, registry, archive, chain.domain_separator,
                         PERIOD)
    assert verdict == "no provable fraud in the leaves"
    assert find_fraud(honest[:2], chain.get_batch(pb, group), pb, group, registry, archive,
                      chain.domain_separator, PERIOD) == "leaves do not rebuild the committed root"
