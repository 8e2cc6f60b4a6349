"""The archive interface, run against SQLite and PostgreSQL alike."""
from __future__ import annotations

import hashlib

import pytest

import node.archive as archive_module
from node.archive import (
    BATCH_BUILT,
    BATCH_FINAL,
    BATCH_RETIRED,
    BATCH_SUPERSEDED,
    EQUIVOCATION_REGRESSION,
    EQUIVOCATION_SAME_TIME,
    FRAME_COPIES_MAX,
    SCHEMA_VERSION,
    ArchiveVersionError,
    BatchRecord,
    open_archive,
)
from rust_core.wire import RefusalCode, SignedReading

GROUP = b"\x07" * 32


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
    rec = BatchRecord(10, GROUP, b"\xaa" * 32, 6000, 0, 1, own=False, status=BATCH_BUILT,
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
    rec = BatchRecord(10, GROUP, b"\xaa" * 32, 10000, 0, 2, own=True, status=BATCH_BUILT,
                      tx_hash=None, gas_used=None)
    other = BatchRecord(10, GROUP, b"\xbb" * 32, 9000, 0, 2, own=False, status=BATCH_BUILT,
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
    old = BatchRecord(8, GROUP, b"\xdd" * 32, 1, 0, 1, own=False, status=BATCH_BUILT,
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
        return (BatchRecord(10, GROUP, root, imp, 0, 1, own=True, status=BATCH_BUILT,
                            tx_hash=None, gas_used=None), [(m1, 10, 105, imp, 0, 9, 0, 0, b"\x05" * 65)])

    a.save_batch(*own(b"\xaa" * 32, 6000))
    a.rebuild_own_batch(b"\xaa" * 32, *own(b"\xbb" * 32, 7000))
    assert a.own_batch(10, GROUP).root == b"\xbb" * 32
    assert a.batch(10, GROUP, b"\xaa" * 32).status == BATCH_RETIRED
    a.rebuild_own_batch(b"\xbb" * 32, *own(b"\xaa" * 32, 6000))  # back to the first root: revived
    assert a.own_batch(10, GROUP).root == b"\xaa" * 32 and a.own_batch(10, GROUP).status == BATCH_BUILT
    assert a.leaves(10, GROUP, b"\xaa" * 32)[0].import_mwh == 6000
    a.close()


# -- schema versions ---------------------------------------------------------------------------
# The schema of the first release (version 1), exactly as node/archive.py created it up to commit
# 436ac71 (`git show 436ac71:node/archive.py`); the very first commit (5938059) also had the meta
# table, with the chain cursor in it.
V1_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS readings (
        meter_id {blob} NOT NULL, period BIGINT NOT NULL, ts BIGINT NOT NULL,
        import_mwh BIGINT NOT NULL, export_mwh BIGINT NOT NULL, signature {blob} NOT NULL,
        import_wh TEXT NOT NULL, export_wh TEXT NOT NULL, raw_frame {blob} NOT NULL,
        protocol TEXT NOT NULL, group_id {blob} NOT NULL, received_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (meter_id, ts))""",
    "CREATE INDEX IF NOT EXISTS readings_by_period ON readings (period, group_id)",
    """CREATE TABLE IF NOT EXISTS batches (
        period BIGINT NOT NULL, group_id {blob} NOT NULL, root {blob} NOT NULL,
        total_import BIGINT NOT NULL, total_export BIGINT NOT NULL, count BIGINT NOT NULL,
        own INTEGER NOT NULL, signature {blob}, status TEXT NOT NULL,
        tx_hash TEXT, gas_used BIGINT, built_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (period, group_id, root))""",
    """CREATE TABLE IF NOT EXISTS batch_leaves (
        period BIGINT NOT NULL, group_id {blob} NOT NULL, root {blob} NOT NULL, idx BIGINT NOT NULL,
        meter_id {blob} NOT NULL, ts BIGINT NOT NULL, import_mwh BIGINT NOT NULL,
        export_mwh BIGINT NOT NULL, prev_period BIGINT NOT NULL, prev_import BIGINT NOT NULL,
        prev_export BIGINT NOT NULL, signature {blob} NOT NULL,
        PRIMARY KEY (period, group_id, root, idx))""",
    """CREATE TABLE IF NOT EXISTS meter_state (
        meter_id {blob} PRIMARY KEY, period BIGINT NOT NULL,
        import_mwh BIGINT NOT NULL, export_mwh BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS fraud_proofs (
        period BIGINT NOT NULL, group_id {blob} NOT NULL, root {blob} NOT NULL,
        kind TEXT NOT NULL, tx_hash TEXT, at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (period, group_id, root))""",
]
V1_META = "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)"  # commit 5938059 only


def raw(url: str):
    """(connection, placeholder, blob type) straight to the database, past the archive code."""
    if url.startswith("sqlite:///"):
        import sqlite3

        return sqlite3.connect(url.removeprefix("sqlite:///")), "?", "BLOB"
    import psycopg

    return psycopg.connect(url), "%s", "BYTEA"


def v1_archive(url: str, with_meta: bool) -> list[SignedReading]:
    """A version 1 archive as its release wrote it: readings, a final batch with its leaves, the
    register it settled, a fraud proof (and the chain cursor in meta, for the first commit)."""
    conn, ph, blob = raw(url)
    readings = [sr(1, 100, 5000), sr(1, 105, 6000, sig=3), sr(2, 101, 7000, sig=4),
                sr(1, 115, 6500).model_copy(update={"raw_frame": b"\x00" + bytes(range(256)), "protocol": "sml"})]
    with conn:
        cur = conn.cursor()
        for stmt in V1_SCHEMA + ([V1_META] if with_meta else []):
            cur.execute(stmt.format(blob=blob))
        marks = lambda n: ",".join([ph] * n)  # noqa: E731
        cur.executemany(f"INSERT INTO readings VALUES ({marks(12)})",
                        [(r.meter_id, r.period, r.timestamp, r.import_mwh, r.export_mwh, r.signature, str(r.import_wh),
                          str(r.export_wh), r.raw_frame, r.protocol, GROUP, 1.5) for r in readings])
        cur.execute(f"INSERT INTO batches VALUES ({marks(12)})",
                    (10, GROUP, b"\xaa" * 32, 6000, 0, 2, 1, b"\x01" * 65, BATCH_FINAL, "0xabc", 123, 2.5))
        cur.executemany(f"INSERT INTO batch_leaves VALUES ({marks(12)})",
                        [(10, GROUP, b"\xaa" * 32, 0, bytes([1]) * 32, 105, 6000, 0, 9, 1000, 0, bytes([3]) * 65),
                         (10, GROUP, b"\xaa" * 32, 1, bytes([2]) * 32, 101, 7000, 0, 9, 2000, 0, bytes([4]) * 65)])
        cur.executemany(f"INSERT INTO meter_state VALUES ({marks(4)})",
                        [(bytes([1]) * 32, 10, 6000, 0), (bytes([2]) * 32, 10, 7000, 0)])
        cur.execute(f"INSERT INTO fraud_proofs VALUES ({marks(6)})",
                    (11, GROUP, b"\xcc" * 32, "proveBadSignature", "0x1", 3.5))
        if with_meta:
            cur.execute(f"INSERT INTO meta VALUES ({marks(2)})", ("next_block", "4242"))
    conn.close()
    return readings


@pytest.mark.parametrize("with_meta", [False, True], ids=["release-436ac71", "release-5938059"])
def test_a_version_1_archive_is_migrated_and_keeps_every_row(archive_url, with_meta):
    readings = v1_archive(archive_url, with_meta)
    a = open_archive(archive_url)
    assert a.schema_version == 1  # what it found; it is now SCHEMA_VERSION
    m1, m2 = bytes([1]) * 32, bytes([2]) * 32
    assert all(a.has_reading(r.meter_id, r.timestamp, r.signature) for r in readings)
    page = a.readings_page(10, GROUP, None, 100) + a.readings_page(11, GROUP, None, 100)
    assert sorted(page, key=lambda r: (r.meter_id, r.timestamp)) == sorted(readings,
                                                                           key=lambda r: (r.meter_id, r.timestamp))
    for r in readings:  # each reading's frame is its first kept copy, with its hash
        assert a.frames(r.meter_id, r.timestamp, r.signature) == [(hashlib.sha256(r.raw_frame).digest(), r.raw_frame,
                                                                   r.protocol)]
    assert [(r.meter_id, r.timestamp) for r, _ in a.latest_readings(10, GROUP)] == [(m1, 105), (m2, 101)]
    final = a.final_batch(10, GROUP)
    assert final is not None and (final.root, final.tx_hash, final.gas_used, final.own) == (
        b"\xaa" * 32, "0xabc", 123, True)
    assert a.leaves(10, GROUP, b"\xaa" * 32) == [(m1, 10, 105, 6000, 0, 9, 1000, 0, bytes([3]) * 65),
                                                 (m2, 10, 101, 7000, 0, 9, 2000, 0, bytes([4]) * 65)]
    assert a.meter_states([m1, m2]) == {m1: (10, 6000, 0), m2: (10, 7000, 0)}
    assert a.fraud_proof(11, GROUP, b"\xcc" * 32) == "proveBadSignature"
    assert a.equivocations() == []
    # the version 2 key: another signed reading at the same meter and time is kept as evidence
    [out] = a.store_readings([(sr(1, 115, 6600, sig=9), GROUP)])
    assert isinstance(out, tuple) and out[0] == RefusalCode.CONFLICTING_READING
    assert [e.kind for e in a.equivocations()] == [EQUIVOCATION_SAME_TIME]
    a.close()

    b = open_archive(archive_url)  # migrated once: opened as the current version, rows still there
    assert b.schema_version == SCHEMA_VERSION and len(b.readings_page(11, GROUP, None, 100)) == 2
    b.close()
    conn, ph, _ = raw(archive_url)
    with conn:
        rows = dict(conn.cursor().execute("SELECT k, v FROM meta").fetchall())
    conn.close()
    assert rows == {"schema_version": str(SCHEMA_VERSION), **({"next_block": "4242"} if with_meta else {})}


def test_a_failed_migration_leaves_the_archive_as_it_was(archive_url, monkeypatch):
    v1_archive(archive_url, with_meta=False)

    def migrate_then_fail(archive, tx):
        migrate(archive, tx)
        raise RuntimeError("power cut")

    migrate = archive_module._MIGRATIONS[1]
    monkeypatch.setitem(archive_module._MIGRATIONS, 1, migrate_then_fail)
    with pytest.raises(RuntimeError, match="power cut"):
        open_archive(archive_url)
    monkeypatch.undo()
    conn, ph, _ = raw(archive_url)
    with conn:  # still version 1: no meta, no new tables, the old key (a second reading at ts 100 refused)
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM readings")
        assert cur.fetchone()[0] == 4
        with pytest.raises(Exception, match="(?i)unique|duplicate"):
            cur.execute(f"INSERT INTO readings VALUES ({','.join([ph] * 12)})",
                        (bytes([1]) * 32, 10, 100, 1, 0, b"\x09" * 65, "0.001", "0", b"f", "dsmr", GROUP, 1.0))
    conn.close()
    a = open_archive(archive_url)  # and the next open migrates it
    assert a.schema_version == 1 and a.frames(bytes([1]) * 32, 100, bytes([1]) * 65)
    a.close()


def test_an_archive_newer_than_the_code_is_refused_naming_it_and_both_versions(archive_url):
    open_archive(archive_url).close()
    conn, ph, _ = raw(archive_url)
    with conn:
        conn.cursor().execute(f"UPDATE meta SET v = {ph} WHERE k = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    where = archive_url.removeprefix("sqlite:///") if archive_url.startswith("sqlite") else archive_url.split("@")[-1]
    with pytest.raises(ArchiveVersionError) as refused:
        open_archive(archive_url)
    message = str(refused.value)
    assert where in message and f"version {SCHEMA_VERSION + 1} is newer" in message
    assert f"this software's {SCHEMA_VERSION}" in message
    if "@" in archive_url and ":" in archive_url.split("@")[0].split("//")[1]:  # a DSN's password is not shown
        assert archive_url.split("@")[0].split(":")[-1] not in message
    conn, ph, _ = raw(archive_url)
    with conn:
        assert conn.cursor().execute("SELECT v FROM meta").fetchall() == [(str(SCHEMA_VERSION + 1),)]  # untouched
    conn.close()


def test_an_archive_of_version_2_written_before_versions_is_recognised(archive_url):
    a = open_archive(archive_url)
    a.store_readings([(sr(1, 100, 5000), GROUP)])
    a.close()
    conn, _, _ = raw(archive_url)
    with conn:
        conn.cursor().execute("DROP TABLE meta")  # as the code between commits d80573b and this one left it
    conn.close()
    b = open_archive(archive_url)
    assert b.schema_version == 2 and b.has_reading(bytes([1]) * 32, 100, bytes([1]) * 65)
    assert b.frames(bytes([1]) * 32, 100, bytes([1]) * 65) and len(b.frames(bytes([1]) * 32, 100, bytes([1]) * 65)) == 1
    b.close()
