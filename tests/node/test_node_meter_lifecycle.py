"""The node follows a meter point's decommissioning: its registry view (and the checkpoint it
resumes from) shortens the window, ingest refuses readings after the last period, and a reading
accepted before the node learned of it is left out of the batch rather than making it false."""
from __future__ import annotations

from decimal import Decimal

import pytest
from node_harness import deploy_settlement

import rust_core
from node.archive import open_archive
from node.batching import build_batch
from node.chain import Chain
from node.checkpoint import ScanCheckpoint
from node.registry import RegistryView
from rust_core.wire import SignedReading

pytestmark = pytest.mark.chain
PERIOD = 10


def signed(dep, i: int, period: int, imp: int) -> SignedReading:
    m = dep.meters[i]
    r = (m.meter_id, period, period * PERIOD + 3, imp, m.baseline[1])
    [sig] = rust_core.sign_readings(dep.domain, [r], [m.key])
    return SignedReading(meter_id=r[0], period=period, timestamp=r[2], import_mwh=imp, export_mwh=r[4], signature=sig,
                         import_wh=Decimal(imp) / 1000, export_wh=Decimal(r[4]) / 1000, raw_frame=b"f",
                         protocol="sml")


def test_a_decommission_reaches_the_view_its_checkpoint_and_the_batch(anvil, tmp_path):
    head_period = anvil.w3.eth.get_block("latest")["timestamp"] // PERIOD
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=2, n_operators=1, quorum=1, n_meters=2,
                            active_from=head_period - 5)
    chain = Chain(dep.rpc_url, dep.registry, dep.ledger, dep.operator_keys[0])
    archive = open_archive(f"sqlite:///{tmp_path / 'a.db'}")
    view = RegistryView(chain, ScanCheckpoint(archive, chain.deployment_key))
    view.refresh()
    gone, kept = dep.meters[0].meter_id, dep.meters[1].meter_id
    last = anvil.w3.eth.get_block("latest")["timestamp"] // PERIOD + 1
    # a reading of the period after the last, accepted while the node did not know yet
    archive.store_readings([(signed(dep, i, last + 1, 1_100_000 + i), dep.meters[i].group_id) for i in (0, 1)])
    dep.admin.transact("MeterRegistry", dep.registry, "decommission", gone, last)
    view.refresh()
    assert view.meter(gone).active_until == last and view.meter(kept).active_until == 2**64 - 1

    resumed = RegistryView(chain, ScanCheckpoint(archive, chain.deployment_key))
    assert resumed.meter(gone).active_until == last  # from the checkpoint, before any scan

    built = build_batch(archive, view, last + 1, dep.meters[0].group_id)
    assert built is not None and [lf.meter_id for lf in built.leaves] == [kept]
    assert built.skipped[gone] == f"not active in period {last + 1} (active {dep.meters[0].active_from}..{last})"
    archive.close()
