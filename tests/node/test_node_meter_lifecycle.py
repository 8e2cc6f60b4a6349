"""The node follows a meter point's life: a decommissioning shortens the window in its registry
view (and the checkpoint it resumes from), and a reading accepted before the node learned of it
is left out of the batch rather than making it false; a key rotation holds from its period on
in ingest (the old key's readings refused as bad signatures)."""
from __future__ import annotations

import secrets
from decimal import Decimal

import pytest
from eth_account import Account
from node_harness import deploy_settlement

import rust_core
from node.archive import open_archive
from node.batching import build_batch
from node.chain import Chain
from node.checkpoint import ScanCheckpoint
from node.ingest import Ingestor, PeriodGate
from node.metrics import NodeMetrics
from node.registry import RegistryView
from rust_core.wire import RefusalCode, SignedReading

pytestmark = pytest.mark.chain
PERIOD = 10


def signed(dep, i: int, period: int, imp: int, key: bytes | None = None) -> SignedReading:
    m = dep.meters[i]
    r = (m.meter_id, period, period * PERIOD + 3, imp, m.baseline[1])
    [sig] = rust_core.sign_readings(dep.domain, [r], [key or m.key])
    return SignedReading(meter_id=r[0], period=period, timestamp=r[2], import_mwh=imp, export_mwh=r[4], signature=sig,
                         import_wh=Decimal(imp) / 1000, export_wh=Decimal(r[4]) / 1000, raw_frame=b"f",
                         protocol="sml")


def settlement(anvil, tmp_path, n_meters: int):
    """A one-operator deployment whose meters are active since 5 periods ago, an archive, and a
    registry view checkpointed in it."""
    head_period = anvil.w3.eth.get_block("latest")["timestamp"] // PERIOD
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=2, n_operators=1, quorum=1, n_meters=n_meters,
                            active_from=head_period - 5)
    chain = Chain(dep.rpc_url, dep.registry, dep.ledger, dep.operator_keys[0])
    archive = open_archive(f"sqlite:///{tmp_path / 'a.db'}")
    view = RegistryView(chain, ScanCheckpoint(archive, chain.deployment_key))
    view.refresh()
    return dep, chain, archive, view


def test_a_decommission_reaches_the_view_its_checkpoint_and_the_batch(anvil, tmp_path):
    dep, chain, archive, view = settlement(anvil, tmp_path, n_meters=2)
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


def test_a_key_rotation_reaches_ingest_from_its_period(anvil, tmp_path):
    dep, chain, archive, view = settlement(anvil, tmp_path, n_meters=1)
    meter = dep.meters[0]
    new_key = secrets.token_bytes(32)
    rotate_from = anvil.w3.eth.get_block("latest")["timestamp"] // PERIOD + 3
    mistyped = Account.create().address  # a rotation that waits is replaced by the next one
    dep.admin.transact("MeterRegistry", dep.registry, "rotateKey", meter.meter_id, mistyped, rotate_from + 5)
    dep.admin.transact("MeterRegistry", dep.registry, "rotateKey", meter.meter_id,
                       Account.from_key(new_key).address, rotate_from)
    view.refresh()
    assert view.meter(meter.meter_id).key_changes == ((rotate_from, bytes.fromhex(Account.from_key(new_key).address[2:])),)
    resumed = RegistryView(chain, ScanCheckpoint(archive, chain.deployment_key))
    assert resumed.meter(meter.meter_id) == view.meter(meter.meter_id)  # key changes kept in the checkpoint

    now = [0.0]
    ingest = Ingestor(archive, view, dep.domain, PeriodGate(PERIOD, 1.0, lambda: now[0]), NodeMetrics())

    def deliver(period: int, imp: int, key: bytes):
        now[0] = period * PERIOD + 5
        return ingest.deliver([signed(dep, 0, period, imp, key).to_wire()])

    assert deliver(rotate_from - 1, 1_200_000, meter.key).accepted == [0]  # the old key, before the rotation
    refused = deliver(rotate_from, 1_300_000, meter.key)  # the old key, from the rotation on
    assert refused.accepted == [] and refused.rejected[0].code == RefusalCode.BAD_SIGNATURE
    assert deliver(rotate_from, 1_300_000, new_key).accepted == [0]
    archive.close()
