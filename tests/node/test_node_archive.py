"""The archive interface, run against SQLite and PostgreSQL alike."""
from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest

from node.archive import (
    BATCH_BUILT,
    BATCH_FINAL,
    BATCH_RETIRED,
    BATCH_SUPERSEDED,
    EQUIVOCATION_REGRESSION,
    EQUIVOCATION_SAME_TIME,
    FRAME_COPIES_MAX,
    BatchRecord,
    open_archive,
)
from rust_core.wire import RefusalCode, SignedReading

DSN_FILE = Path(__file__).resolve().parents[2] / "var" / "postgres.dsn"
GROUP = b"\x07" * 32


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'archive.db'}"
        return
    if not DSN_FILE.exists():
        print(f"PostgreSQL archive tests skipped: {DSN_FILE} missing (run `make postgres`)")
        pytest.skip(f"{DSN_FILE} missing: run `make postgres` (scripts/ensure_postgres.sh)")
    import psycopg

    dsn = DSN_FILE.read_text().strip()
    name = "node_test_" + secrets.token_hex(4)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield dsn.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def sr(meter: int, ts: int, imp: int, exp: int = 0, sig: int = 1) -> SignedReading:
    return SignedReading(meter_id=bytes([meter]) * 32, period=ts // 10, timestamp=ts, import_mwh=imp, export_mwh=exp,
                         signature=bytes([sig]) * 65, import_wh=f"{imp / 1000}", export_wh=f"{exp / 1000}",
                         raw_frame=b"\x01\x02frame", protocol="dsmr")


def test_readings_duplicates_conflicts_and_regressions(archive_url):
    a = open_archive(archive_url)
    m1 = bytes([1]) * 32
    out = a.store_readings([(sr(1, 100, 5000), GROUP), (sr(2, 101, 7000), GROUP), (sr(1, 100, 5000), GROUP)])
    assert out == [None, None, "duplicate"]
    out = a.store_readings([
        (sr(1, 100, 5001, sig=2), GROUP),   # another signed reading at the same meter and time
        (sr(1, 105, 4999), GROUP),          # runs backwards from ts 100 (not settled): kept, evidence
        (sr(1, 95, 5001), GROUP),           # lies above the later reading at ts 100: kept, evidence
        (sr(1, 106, 6000), GROUP),
    ])
    assert out[0][0] == RefusalCode.CONFLICTING_READING and "equivocation evidence" in out[0][1]
    assert out[1:] == [None, None, None]
    assert a.has_reading(m1, 100, bytes([2]) * 65) and a.has_reading(m1, 105, bytes([1]) * 65)
    assert not a.has_reading(m1, 105, bytes([2]) * 65)
    evidence = {(e.kind, e.first.timestamp, e.first.signature[0], e.second.timestamp, e.second.signature[0])
                for e in a.equivocations()}
    assert evidence == {
        (EQUIVOCATION_SAME_TIME, 100, 1, 100, 2),
        (EQUIVOCATION_REGRESSION, 100, 1, 105, 1), (EQUIVOCATION_REGRESSION, 100, 2, 105, 1),
        (EQUIVOCATION_REGRESSION, 95, 1, 100, 1), (EQUIVOCATION_REGRESSION, 95, 1, 105, 1),
    }
    assert all(e.period == 10 for e in a.equivocations(period=10)) and a.equivocations(period=11) == []
    # the settled reading of each meter in period 10: latest timestamp, ascending by meter id
    assert [(r.meter_id[0], r.timestamp, r.import_mwh) for r, _ in a.latest_readings(10, GROUP)] == [
        (1, 106, 6000), (2, 101, 7000)]
    a.store_readings([(sr(1, 106, 6001, sig=0), GROUP)])  # equivocation at the latest timestamp
    assert [(r.timestamp, s[0]) for r, s in a.latest_readings(10, GROUP)][0] == (106, 0)  # lowest signature wins
    assert a.open_periods(after_period=-1) == [(9, GROUP), (10, GROUP)]
    # every reading of the period, conflicting ones included, paged by (meter, timestamp, signature)
    first = a.readings_page(10, GROUP, None, 4)
    rest = a.readings_page(10, GROUP, (first[-1].meter_id, first[-1].timestamp, first[-1].signature), 100)
    assert [(r.meter_id[0], r.timestamp, r.signature[0]) for r in first + rest] == [
        (1, 100, 1), (1, 100, 2), (1, 105, 1), (1, 106, 0), (1, 106, 1), (2, 101, 1)]  # ts 95 is period 9
    a.close()


def test_every_distinct_raw_frame_is_kept_with_its_hash(archive_url):
    a = open_archive(archive_url)
    real = sr(1, 100, 5000)
    forged = real.model_copy(update={"raw_frame": b"forged first", "protocol": "sml"})
    assert a.store_readings([(forged, GROUP), (real, GROUP), (real, GROUP)]) == [None, "duplicate", "duplicate"]
    for i in range(10):  # bounded: a replayer cannot grow the archive without limit
        a.store_readings([(real.model_copy(update={"raw_frame": b"junk %d" % i}), GROUP)])
    frames = a.frames(real.meter_id, 100, real.signature)
    assert len(frames) == FRAME_COPIES_MAX
    assert frames[:2] == [(hashlib.sha256(b"forged first").digest(), b"forged first", "sml"),
                          (hashlib.sha256(real.raw_frame).digest(), real.raw_frame, "dsmr")]
    a.close()


def test_a_reading_below_the_settled_register_is_refused(archive_url):
    a = open_archive(archive_url)
    m1 = bytes([1]) * 32
    rec = BatchRecord(10, GROUP, b"\xaa" * 32, 6000, 0, 1, own=False, signature=None, status=BATCH_BUILT,
                      tx_hash=None, gas_used=None)
    a.save_batch(rec, [(m1, 10, 105, 6000, 0, 9, 1000, 0, b"\x05" * 65)])
    a.set_batch_status(10, GROUP, b"\xaa" * 32, BATCH_FINAL)
    out = a.store_readings([(sr(1, 115, 5999), GROUP), (sr(1, 116, 6000), GROUP)])
    assert out == [(RefusalCode.REGISTER_REGRESSION, "below the register settled for period 10"), None]
    a.close()


def test_batches_final_moves_registers_forward_and_survives_reopen(archive_url):
    a = open_archive(archive_url)
    m1, m2 = bytes([1]) * 32, bytes([2]) * 32
    leaves = [(m1, 10, 105, 6000, 0, 9, 1000, 0, b"\x05" * 65), (m2, 10, 101, 7000, 0, 9, 2000, 0, b"\x06" * 65)]
    rec = BatchRecord(10, GROUP, b"\xaa" * 32, 10000, 0, 2, own=True, signature=b"\x01" * 65, status=BATCH_BUILT,
                      tx_hash=None, gas_used=None)
    other = BatchRecord(10, GROUP, b"\xbb" * 32, 9000, 0, 2, own=False, signature=None, status=BATCH_BUILT,
                        tx_hash=None, gas_used=None)
    a.save_batch(rec, leaves)
    a.save_batch(rec, leaves)  # idempotent
    a.save_batch(other, leaves)
    assert a.own_batch(10, GROUP).root == b"\xaa" * 32
    assert a.leaves(10, GROUP, b"\xaa" * 32) == leaves
    assert a.meter_states([m1, m2]) == {}
    a.set_batch_status(10, GROUP, b"\xbb" * 32, BATCH_FINAL, "0xabc", 123)
    assert a.batch(10, GROUP, b"\xaa" * 32).status == BATCH_SUPERSEDED
    assert a.final_batch(10, GROUP).tx_hash == "0xabc"
    assert a.meter_states([m1, m2]) == {m1: (10, 6000, 0), m2: (10, 7000, 0)}
    a.record_fraud_proof(11, GROUP, b"\xcc" * 32, "proveBadSignature", "0x1")
    a.record_fraud_proof(11, GROUP, b"\xcc" * 32, "proveBadSignature", "0x2")
    a.close()

    b = open_archive(archive_url)
    assert b.meter_states([m1]) == {m1: (10, 6000, 0)}
    assert b.fraud_proof(11, GROUP, b"\xcc" * 32) == "proveBadSignature"
    # an older final batch never moves a register back
    old = BatchRecord(8, GROUP, b"\xdd" * 32, 1, 0, 1, own=False, signature=None, status=BATCH_BUILT,
                      tx_hash=None, gas_used=None)
    b.save_batch(old, [(m1, 8, 85, 1001, 0, 7, 1000, 0, b"\x07" * 65)])
    b.set_batch_status(8, GROUP, b"\xdd" * 32, BATCH_FINAL)
    assert b.meter_states([m1]) == {m1: (10, 6000, 0)}
    b.close()


def test_unknown_archive_url_is_refused():
    with pytest.raises(ValueError, match="archive URL"):
        open_archive("mysql://x")


def test_a_rebuilt_own_batch_retires_the_old_one(archive_url):
    a = open_archive(archive_url)
    m1 = bytes([1]) * 32

    def own(root: bytes, imp: int) -> tuple[BatchRecord, list]:
        return (BatchRecord(10, GROUP, root, imp, 0, 1, own=True, signature=root[:1] * 65, status=BATCH_BUILT,
                            tx_hash=None, gas_used=None), [(m1, 10, 105, imp, 0, 9, 0, 0, b"\x05" * 65)])

    a.save_batch(*own(b"\xaa" * 32, 6000))
    a.rebuild_own_batch(b"\xaa" * 32, *own(b"\xbb" * 32, 7000))
    assert a.own_batch(10, GROUP).root == b"\xbb" * 32
    assert a.batch(10, GROUP, b"\xaa" * 32).status == BATCH_RETIRED
    a.rebuild_own_batch(b"\xbb" * 32, *own(b"\xaa" * 32, 6000))  # back to the first root: revived
    assert a.own_batch(10, GROUP).root == b"\xaa" * 32 and a.own_batch(10, GROUP).status == BATCH_BUILT
    assert a.leaves(10, GROUP, b"\xaa" * 32)[0].import_mwh == 6000
    a.close()
