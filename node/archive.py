"""The node's archive: every accepted reading (with its exact decimal registers and raw frame),
the equivocation evidence against meter keys, the batches it built or adopted with their leaves,
each meter's latest final register, the fraud proofs it sent, and where its event scans resume
(node.checkpoint, rows of `meta`).

The meter signs the reading (meter, period, timestamp, registers), not its raw frame or protocol:
those are unauthenticated evidence. The node therefore keeps every distinct copy it was given
(up to FRAME_COPIES_MAX per reading, each with its SHA-256), so a forged copy delivered first
cannot displace the real one. One interface over SQLite (default, one file) and PostgreSQL (psycopg 3); the SQL
is shared, only placeholders, blob types and connection handling differ.

All methods are thread-safe (one connection behind a lock) and each is one transaction, so a
node killed at any point resumes from a consistent archive.

The schema is versioned (SCHEMA_VERSION, the row `schema_version` of the table `meta`, one
mechanism for both backends). Opening an archive migrates it forward from any earlier released
schema in one transaction (all of it or none), keeping every stored row; an archive written by
newer software is refused (ArchiveVersionError) rather than read with the wrong schema.
Versions: 1 the first released schema (one reading per meter and timestamp, no frame copies, no
evidence; node releases up to commit 436ac71, the earliest of them with a `meta` key/value
table), 2 the current one (every signed reading at a timestamp kept, frame copies with their
SHA-256, equivocation evidence)."""
from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from rust_core.wire import BatchHeader, Leaf, Reading, RefusalCode, Register, SignedReading

BATCH_BUILT = "built"          # built and signed by this node, not yet on chain as final
BATCH_FINAL = "final"          # final on chain; its leaves are the registers the next period counts from
BATCH_REJECTED = "rejected"    # rejected on chain by a fraud proof
BATCH_SUPERSEDED = "superseded"  # another root became final for its period and group
BATCH_RETIRED = "retired"      # an own batch replaced by a rebuild from the reconciled readings
FRAME_COPIES_MAX = 4           # distinct raw frames kept per signed reading (unauthenticated evidence)
EVIDENCE_PAIRS_MAX = 8         # evidence pairs recorded per reading and kind (one pair already proves it)
EQUIVOCATION_SAME_TIME = "same_timestamp"   # two signed readings of one meter at one timestamp
EQUIVOCATION_REGRESSION = "regression"      # a later signed reading with lower registers
ARCHIVE_MAX = 2**63 - 1        # integers are kept in signed 64-bit columns (SQLite INTEGER, BIGINT)
SCHEMA_VERSION = 2             # the schema this code reads and writes (module docstring)
_VERSION_KEY = "schema_version"
_PG_SCHEMA_LOCK = 0x41524348_49564531  # pg_advisory_xact_lock key: one migrating opener at a time

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS readings (
        meter_id {blob} NOT NULL, period BIGINT NOT NULL, ts BIGINT NOT NULL,
        import_mwh BIGINT NOT NULL, export_mwh BIGINT NOT NULL, signature {blob} NOT NULL,
        import_wh TEXT NOT NULL, export_wh TEXT NOT NULL, raw_frame {blob} NOT NULL,
        protocol TEXT NOT NULL, group_id {blob} NOT NULL, received_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (meter_id, ts, signature))""",
    "CREATE INDEX IF NOT EXISTS readings_by_period ON readings (period, group_id, meter_id, ts, signature)",
    """CREATE TABLE IF NOT EXISTS reading_frames (
        meter_id {blob} NOT NULL, ts BIGINT NOT NULL, signature {blob} NOT NULL, sha256 {blob} NOT NULL,
        raw_frame {blob} NOT NULL, protocol TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (meter_id, ts, signature, sha256))""",
    """CREATE TABLE IF NOT EXISTS equivocations (
        meter_id {blob} NOT NULL, period BIGINT NOT NULL, kind TEXT NOT NULL,
        ts_a BIGINT NOT NULL, sig_a {blob} NOT NULL, ts_b BIGINT NOT NULL, sig_b {blob} NOT NULL,
        found_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (meter_id, ts_a, sig_a, ts_b, sig_b))""",
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
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
]


class ArchiveVersionError(RuntimeError):
    """The archive's schema is newer than this code's (or its version unreadable)."""

_READING_COLUMNS = "meter_id, period, ts, import_mwh, export_mwh, signature, import_wh, export_wh, raw_frame, protocol"


def _signed(row) -> SignedReading:
    m, p, ts, imp, exp, sig, iwh, ewh, frame, protocol = row
    return SignedReading(meter_id=bytes(m), period=p, timestamp=ts, import_mwh=imp, export_mwh=exp,
                         signature=bytes(sig), import_wh=iwh, export_wh=ewh, raw_frame=bytes(frame),
                         protocol=protocol)


@dataclass(frozen=True)
class Equivocation:
    """Two readings signed by one meter key that cannot both be true: evidence against the key."""

    kind: str            # EQUIVOCATION_SAME_TIME or EQUIVOCATION_REGRESSION
    period: int          # of the reading that revealed it
    first: SignedReading
    second: SignedReading


@dataclass(frozen=True)
class BatchRecord:
    """A batch this node built or adopted. Its header carries no signature: a header is signed
    under the operator epoch in force when it is asked for (the batches table's signature column,
    of archives written before operator epochs, is no longer read or written)."""

    period: int
    group_id: bytes
    root: bytes
    total_import: int
    total_export: int
    count: int
    own: bool
    status: str
    tx_hash: str | None
    gas_used: int | None

    def header(self, epoch: int) -> BatchHeader:
        """The batch's header as the operator set of `epoch` signs it."""
        return BatchHeader(self.period, self.group_id, self.root, self.total_import, self.total_export, self.count,
                           epoch)


class Archive:
    """Use open_archive(url)."""

    def __init__(self, conn, placeholder: str, blob: str, where: str = "archive") -> None:
        self._conn = conn
        self._ph = placeholder
        self._blob = blob
        self._lock = threading.Lock()
        self.where = where  # the file or the DSN (without its password), for messages
        self.schema_version = self._open_schema()

    # -- schema versions and migrations ------------------------------------------------------
    @property
    def _sqlite(self) -> bool:
        return self._blob == "BLOB"

    def _open_schema(self) -> int:
        """Creates, migrates or accepts the schema in one transaction; returns the version found."""
        with self._tx() as tx:
            if self._sqlite:
                tx.execute("BEGIN IMMEDIATE")  # a write lock before reading the version: one migrator
                tables = {r[0] for r in tx.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
            else:
                tx.execute("SELECT pg_advisory_xact_lock(?)", (_PG_SCHEMA_LOCK,))
                tables = {r[0] for r in tx.execute("SELECT table_name FROM information_schema.tables "
                                                   "WHERE table_schema = current_schema()").fetchall()}
            found = self._stored_version(tx, tables)
            if found > SCHEMA_VERSION:
                raise ArchiveVersionError(
                    f"archive {self.where}: schema version {found} is newer than this software's "
                    f"{SCHEMA_VERSION}: upgrade the software (an older one would misread the archive)")
            for version in range(found, SCHEMA_VERSION) if found else ():  # an empty one is created
                _MIGRATIONS[version](self, tx)
            for stmt in _SCHEMA:
                tx.execute(stmt.format(blob=self._blob))
            if found != SCHEMA_VERSION:
                tx.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                           (_VERSION_KEY, str(SCHEMA_VERSION)))
        return found

    def _stored_version(self, tx: Archive._Tx, tables: set[str]) -> int:
        """The archive's schema version: 0 for an empty database; an archive of a release before
        versions were recorded is 1 or, with the tables version 2 added, 2."""
        if "meta" in tables:
            row = tx.execute("SELECT v FROM meta WHERE k = ?", (_VERSION_KEY,)).fetchone()
            if row is not None:
                if not str(row[0]).isdigit():
                    raise ArchiveVersionError(f"archive {self.where}: schema version {row[0]!r} is not a number")
                return int(row[0])
        if "readings" not in tables:
            return 0
        return 2 if {"reading_frames", "equivocations"} & tables else 1

    def _migrate_1_to_2(self, tx: Archive._Tx) -> None:
        """Version 1 kept one reading per (meter, timestamp) and its frame in the readings row.
        The readings table is rebuilt with the key (meter, timestamp, signature) and the index
        the pages read; every reading's frame becomes its first kept copy. Version 1 refused
        conflicting and backward readings, so there is no evidence to derive."""
        readings = _SCHEMA[0].replace("IF NOT EXISTS readings", "readings_v2").format(blob=self._blob)
        tx.execute(readings)
        columns = f"{_READING_COLUMNS}, group_id, received_at"
        tx.execute(f"INSERT INTO readings_v2 ({columns}) SELECT {columns} FROM readings")
        tx.execute("DROP TABLE readings")  # its index with it
        tx.execute("ALTER TABLE readings_v2 RENAME TO readings")
        if not self._sqlite:
            tx.execute("ALTER INDEX readings_v2_pkey RENAME TO readings_pkey")
        for stmt in _SCHEMA[1:3]:  # the readings index and reading_frames
            tx.execute(stmt.format(blob=self._blob))
        after: tuple[bytes, int] = (b"", -1)
        while True:  # in key order, a page at a time (an archive may hold millions)
            rows = tx.execute(
                "SELECT meter_id, ts, signature, raw_frame, protocol, received_at FROM readings "
                "WHERE meter_id > ? OR (meter_id = ? AND ts > ?) ORDER BY meter_id, ts LIMIT 5000",
                (after[0], after[0], after[1])).fetchall()
            if not rows:
                break
            tx.executemany("INSERT INTO reading_frames VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                           [(bytes(m), ts, bytes(sig), hashlib.sha256(bytes(f)).digest(), bytes(f), proto, at)
                            for m, ts, sig, f, proto, at in rows])
            after = (bytes(rows[-1][0]), rows[-1][1])

    # -- plumbing --------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self._ph == "?" else sql.replace("?", self._ph)

    class _Tx:
        def __init__(self, archive: Archive) -> None:
            self.a = archive

        def __enter__(self):
            self.a._lock.acquire()
            self.cur = self.a._conn.cursor()
            return self

        def execute(self, sql: str, params: Iterable = ()):
            self.cur.execute(self.a._sql(sql), tuple(params))
            return self.cur

        def executemany(self, sql: str, rows: list) -> None:
            if rows:
                self.cur.executemany(self.a._sql(sql), rows)

        def __exit__(self, exc_type, exc, tb) -> None:
            try:
                if exc_type is None:
                    self.a._conn.commit()
                else:
                    self.a._conn.rollback()
            finally:
                self.cur.close()
                self.a._lock.release()

    def _tx(self) -> _Tx:
        return Archive._Tx(self)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- readings --------------------------------------------------------------------------
    def store_readings(self, items: list[tuple[SignedReading, bytes]]) -> list[str | tuple[RefusalCode, str] | None]:
        """Stores (reading, group id) pairs in one transaction. Per item: None if stored,
        "duplicate" if the same signed reading is already archived (a distinct raw frame is kept
        as one more copy), (REGISTER_REGRESSION, why) for registers below the meter's settled
        register (never settleable), or (CONFLICTING_READING, why) for another signed reading at
        the same meter and timestamp: that one is stored too, as equivocation evidence, and the
        batch rule (latest timestamp, then lowest signature) decides between them. A reading whose
        registers run backwards against an unsettled neighbour is stored (the rule decides) and
        the pair recorded as evidence."""
        out: list[str | tuple[RefusalCode, str] | None] = []
        now = time.time()
        with self._tx() as tx:
            for r, group in items:
                if tx.execute("SELECT 1 FROM readings WHERE meter_id = ? AND ts = ? AND signature = ?",
                              (r.meter_id, r.timestamp, r.signature)).fetchone():
                    self._keep_frame(tx, r, now)
                    out.append("duplicate")
                    continue
                settled = tx.execute("SELECT period, import_mwh, export_mwh FROM meter_state WHERE meter_id = ?",
                                     (r.meter_id,)).fetchone()
                if settled and (settled[1] > r.import_mwh or settled[2] > r.export_mwh):
                    out.append((RefusalCode.REGISTER_REGRESSION,
                                f"below the register settled for period {settled[0]}"))
                    continue
                same = tx.execute(f"SELECT ts, signature FROM readings WHERE meter_id = ? AND ts = ? "
                                  f"LIMIT {EVIDENCE_PAIRS_MAX}", (r.meter_id, r.timestamp)).fetchall()
                before = tx.execute(
                    "SELECT ts, signature FROM readings WHERE meter_id = ? AND ts < ? "
                    f"AND (import_mwh > ? OR export_mwh > ?) LIMIT {EVIDENCE_PAIRS_MAX}",
                    (r.meter_id, r.timestamp, r.import_mwh, r.export_mwh),
                ).fetchall()
                after = tx.execute(
                    "SELECT ts, signature FROM readings WHERE meter_id = ? AND ts > ? "
                    f"AND (import_mwh < ? OR export_mwh < ?) LIMIT {EVIDENCE_PAIRS_MAX}",
                    (r.meter_id, r.timestamp, r.import_mwh, r.export_mwh),
                ).fetchall()
                tx.execute(
                    f"INSERT INTO readings ({_READING_COLUMNS}, group_id, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (r.meter_id, r.period, r.timestamp, r.import_mwh, r.export_mwh, r.signature, str(r.import_wh),
                     str(r.export_wh), r.raw_frame, r.protocol, group, now),
                )
                self._keep_frame(tx, r, now)
                pairs = [(EQUIVOCATION_SAME_TIME, (ts, bytes(sig)), (r.timestamp, r.signature)) for ts, sig in same]
                pairs += [(EQUIVOCATION_REGRESSION, (ts, bytes(sig)), (r.timestamp, r.signature)) for ts, sig in before]
                pairs += [(EQUIVOCATION_REGRESSION, (r.timestamp, r.signature), (ts, bytes(sig))) for ts, sig in after]
                tx.executemany(
                    "INSERT INTO equivocations VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                    [(r.meter_id, r.period, kind, *a, *b, now)
                     for kind, a, b in pairs],
                )
                out.append((RefusalCode.CONFLICTING_READING,
                            f"the meter signed other reading(s) at timestamp {r.timestamp}: kept as "
                            "equivocation evidence; the batch takes the lowest signature") if same else None)
        return out

    @staticmethod
    def _keep_frame(tx: Archive._Tx, r: SignedReading, now: float) -> None:
        copies = tx.execute("SELECT count(*) FROM reading_frames WHERE meter_id = ? AND ts = ? AND signature = ?",
                            (r.meter_id, r.timestamp, r.signature)).fetchone()[0]
        if copies < FRAME_COPIES_MAX:
            tx.execute("INSERT INTO reading_frames VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                       (r.meter_id, r.timestamp, r.signature, hashlib.sha256(r.raw_frame).digest(), r.raw_frame,
                        r.protocol, now))

    def has_reading(self, meter_id: bytes, ts: int, signature: bytes) -> bool:
        with self._tx() as tx:
            row = tx.execute("SELECT 1 FROM readings WHERE meter_id = ? AND ts = ? AND signature = ?",
                             (meter_id, ts, signature)).fetchone()
        return row is not None

    def frames(self, meter_id: bytes, ts: int, signature: bytes) -> list[tuple[bytes, bytes, str]]:
        """Every distinct (sha256, raw frame, protocol) delivered with that signed reading, first first."""
        with self._tx() as tx:
            rows = tx.execute("SELECT sha256, raw_frame, protocol FROM reading_frames WHERE meter_id = ? AND ts = ? "
                              "AND signature = ? ORDER BY received_at, sha256", (meter_id, ts, signature)).fetchall()
        return [(bytes(h), bytes(f), p) for h, f, p in rows]

    def readings_page(self, period: int, group_id: bytes, after: tuple[bytes, int, bytes] | None,
                      limit: int) -> list[SignedReading]:
        """The period's signed readings in the group (conflicting ones included), ordered by
        (meter, timestamp, signature), the first `limit` after the cursor `after`."""
        m, ts, sig = after or (b"", -1, b"")
        with self._tx() as tx:
            rows = tx.execute(
                f"SELECT {_READING_COLUMNS} FROM readings WHERE period = ? AND group_id = ? AND "
                "(meter_id > ? OR (meter_id = ? AND (ts > ? OR (ts = ? AND signature > ?)))) "
                "ORDER BY meter_id, ts, signature LIMIT ?",
                (period, group_id, m, m, ts, ts, sig, limit),
            ).fetchall()
        return [_signed(row) for row in rows]

    def readings_digest(self, period: int, group_id: bytes) -> tuple[int, bytes]:
        """(count, digest) of the period's signed readings in the group (rust_core.wire.ReadingsDigest)."""
        h = hashlib.sha256()
        with self._tx() as tx:
            rows = tx.execute("SELECT meter_id, ts, signature FROM readings WHERE period = ? AND group_id = ? "
                              "ORDER BY meter_id, ts, signature", (period, group_id)).fetchall()
        for m, ts, sig in rows:
            h.update(bytes(m) + ts.to_bytes(8, "big") + bytes(sig))
        return len(rows), h.digest()

    def equivocations(self, period: int | None = None) -> list[Equivocation]:
        """The equivocation evidence, optionally of one period: both signed readings of each pair."""
        where, params = ("WHERE e.period = ?", (period,)) if period is not None else ("", ())
        cols = ", ".join(f"{x}.{c.strip()}" for x in ("a", "b") for c in _READING_COLUMNS.split(","))
        with self._tx() as tx:
            rows = tx.execute(
                f"SELECT e.kind, e.period, {cols} FROM equivocations e "
                "JOIN readings a ON a.meter_id = e.meter_id AND a.ts = e.ts_a AND a.signature = e.sig_a "
                f"JOIN readings b ON b.meter_id = e.meter_id AND b.ts = e.ts_b AND b.signature = e.sig_b {where} "
                "ORDER BY e.period, e.meter_id, e.ts_a, e.sig_a, e.ts_b, e.sig_b", params,
            ).fetchall()
        return [Equivocation(row[0], row[1], _signed(row[2:12]), _signed(row[12:22])) for row in rows]

    def latest_readings(self, period: int, group_id: bytes) -> list[tuple[Reading, bytes]]:
        """Each meter's reading of the period in the group that the batch settles, ascending by
        meter id, with its signature: the one with the latest timestamp, and of several signed at
        that timestamp (an equivocation) the one with the lowest signature bytes."""
        with self._tx() as tx:
            rows = tx.execute(
                "SELECT meter_id, ts, import_mwh, export_mwh, signature FROM readings "
                "WHERE period = ? AND group_id = ? ORDER BY meter_id, ts, signature DESC",
                (period, group_id),
            ).fetchall()
        latest: dict[bytes, tuple[Reading, bytes]] = {}
        for m, ts, imp, exp, sig in rows:
            latest[bytes(m)] = (Reading(bytes(m), period, ts, imp, exp), bytes(sig))
        return [latest[m] for m in sorted(latest)]

    def open_periods(self, after_period: int) -> list[tuple[int, bytes]]:
        """(period, group) pairs with readings, later than `after_period`, oldest first."""
        with self._tx() as tx:
            rows = tx.execute(
                "SELECT DISTINCT period, group_id FROM readings WHERE period > ? ORDER BY period",
                (after_period,),
            ).fetchall()
        return [(p, bytes(g)) for p, g in rows]

    # -- meter registers -------------------------------------------------------------------
    def meter_states(self, meter_ids: list[bytes]) -> dict[bytes, Register]:
        """{meter_id: its register} from each meter's leaf in the latest final batch."""
        out: dict[bytes, Register] = {}
        with self._tx() as tx:
            for i in range(0, len(meter_ids), 500):
                chunk = meter_ids[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for m, p, imp, exp in tx.execute(
                    f"SELECT meter_id, period, import_mwh, export_mwh FROM meter_state WHERE meter_id IN ({marks})",
                    chunk,
                ).fetchall():
                    out[bytes(m)] = Register(p, imp, exp)
        return out

    # -- batches ---------------------------------------------------------------------------
    def save_batch(self, rec: BatchRecord, leaves: list[Leaf]) -> None:
        with self._tx() as tx:
            self._insert_batch(tx, rec, leaves)

    @staticmethod
    def _insert_batch(tx: Archive._Tx, rec: BatchRecord, leaves: list[Leaf]) -> None:
        if tx.execute(
            "SELECT 1 FROM batches WHERE period = ? AND group_id = ? AND root = ?",
            (rec.period, rec.group_id, rec.root),
        ).fetchone():
            return
        tx.execute(
            "INSERT INTO batches VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec.period, rec.group_id, rec.root, rec.total_import, rec.total_export, rec.count, int(rec.own),
             None, rec.status, rec.tx_hash, rec.gas_used, time.time()),
        )
        tx.executemany(
            "INSERT INTO batch_leaves VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(rec.period, rec.group_id, rec.root, i, lf.meter_id, lf.timestamp, lf.import_mwh, lf.export_mwh,
              lf.prev_period, lf.prev_import_mwh, lf.prev_export_mwh, lf.signature)
             for i, lf in enumerate(map(Leaf._make, leaves))],
        )

    def _batches(self, where: str, params: tuple) -> list[BatchRecord]:
        with self._tx() as tx:
            rows = tx.execute(
                "SELECT period, group_id, root, total_import, total_export, count, own, status, "
                f"tx_hash, gas_used FROM batches WHERE {where} ORDER BY period, built_at",
                params,
            ).fetchall()
        return [
            BatchRecord(p, bytes(g), bytes(r), ti, te, c, bool(o), st, tx_, gas)
            for p, g, r, ti, te, c, o, st, tx_, gas in rows
        ]

    def own_batch(self, period: int, group_id: bytes) -> BatchRecord | None:
        """The batch this node built last for the period (none retired by a rebuild)."""
        found = self._batches("period = ? AND group_id = ? AND own = 1 AND status <> ?",
                              (period, group_id, BATCH_RETIRED))
        return found[-1] if found else None

    def rebuild_own_batch(self, old_root: bytes, rec: BatchRecord, leaves: list[Leaf]) -> None:
        """Retires the own batch with `old_root` and makes `rec` the period's own batch, in one
        transaction (a root built before and retired is revived, with its new signature)."""
        with self._tx() as tx:
            tx.execute("UPDATE batches SET status = ? WHERE period = ? AND group_id = ? AND root = ? AND own = 1",
                       (BATCH_RETIRED, rec.period, rec.group_id, old_root))
            if tx.execute("DELETE FROM batches WHERE period = ? AND group_id = ? AND root = ? AND status = ?",
                          (rec.period, rec.group_id, rec.root, BATCH_RETIRED)).rowcount:
                tx.execute("DELETE FROM batch_leaves WHERE period = ? AND group_id = ? AND root = ?",
                           (rec.period, rec.group_id, rec.root))
            self._insert_batch(tx, rec, leaves)

    def final_batches_since(self, period: int) -> list[BatchRecord]:
        return self._batches("status = ? AND period > ?", (BATCH_FINAL, period))

    def batch(self, period: int, group_id: bytes, root: bytes) -> BatchRecord | None:
        found = self._batches("period = ? AND group_id = ? AND root = ?", (period, group_id, root))
        return found[0] if found else None

    def batches_with_status(self, status: str) -> list[BatchRecord]:
        return self._batches("status = ?", (status,))

    def final_batch(self, period: int, group_id: bytes) -> BatchRecord | None:
        found = self._batches("period = ? AND group_id = ? AND status = ?", (period, group_id, BATCH_FINAL))
        return found[0] if found else None

    def leaves(self, period: int, group_id: bytes, root: bytes) -> list[Leaf]:
        with self._tx() as tx:
            rows = tx.execute(
                "SELECT meter_id, ts, import_mwh, export_mwh, prev_period, prev_import, prev_export, signature "
                "FROM batch_leaves WHERE period = ? AND group_id = ? AND root = ? ORDER BY idx",
                (period, group_id, root),
            ).fetchall()
        return [Leaf(bytes(m), period, ts, i, e, pp, pi, pe, bytes(s)) for m, ts, i, e, pp, pi, pe, s in rows]

    def set_batch_status(self, period: int, group_id: bytes, root: bytes, status: str,
                         tx_hash: str | None = None, gas_used: int | None = None) -> None:
        """Sets a batch's status; making it final also moves every leaf's meter register
        forward, in the same transaction."""
        with self._tx() as tx:
            tx.execute(
                "UPDATE batches SET status = ?, tx_hash = COALESCE(?, tx_hash), gas_used = COALESCE(?, gas_used) "
                "WHERE period = ? AND group_id = ? AND root = ?",
                (status, tx_hash, gas_used, period, group_id, root),
            )
            if status == BATCH_FINAL:
                tx.execute(
                    "UPDATE batches SET status = ? WHERE period = ? AND group_id = ? AND root <> ? AND status = ?",
                    (BATCH_SUPERSEDED, period, group_id, root, BATCH_BUILT),
                )
                rows = tx.execute(
                    "SELECT meter_id, import_mwh, export_mwh FROM batch_leaves "
                    "WHERE period = ? AND group_id = ? AND root = ?",
                    (period, group_id, root),
                ).fetchall()
                tx.executemany(
                    "INSERT INTO meter_state VALUES (?,?,?,?) ON CONFLICT (meter_id) DO UPDATE SET "
                    "period = excluded.period, import_mwh = excluded.import_mwh, export_mwh = excluded.export_mwh "
                    "WHERE meter_state.period < excluded.period",
                    [(bytes(m), period, i, e) for m, i, e in rows],
                )

    # -- fraud proofs ----------------------------------------------------------
    # -- the node's scan checkpoint (node.checkpoint), rows of meta ------------------------
    def checkpoint_rows(self, prefixes: tuple[str, ...]) -> dict[str, str]:
        where = " OR ".join("substr(k, 1, ?) = ?" for _ in prefixes)  # not LIKE: '_' is a wildcard there
        params = [x for p in prefixes for x in (len(p), p)]
        with self._tx() as tx:
            return {k: v for k, v in tx.execute(f"SELECT k, v FROM meta WHERE {where}", params).fetchall()}

    def save_checkpoint_rows(self, rows: dict[str, str]) -> None:
        with self._tx() as tx:
            tx.executemany("INSERT INTO meta VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                           list(rows.items()))

    def record_fraud_proof(self, period: int, group_id: bytes, root: bytes, kind: str, tx_hash: str | None) -> None:
        with self._tx() as tx:
            tx.execute(
                "INSERT INTO fraud_proofs VALUES (?,?,?,?,?,?) ON CONFLICT (period, group_id, root) DO NOTHING",
                (period, group_id, root, kind, tx_hash, time.time()),
            )

    def fraud_proof(self, period: int, group_id: bytes, root: bytes) -> str | None:
        with self._tx() as tx:
            row = tx.execute(
                "SELECT kind FROM fraud_proofs WHERE period = ? AND group_id = ? AND root = ?", (period, group_id, root)
            ).fetchone()
        return row[0] if row else None


_MIGRATIONS = {1: Archive._migrate_1_to_2}  # from version v to v + 1


def _without_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def open_archive(url: str) -> Archive:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:` or `postgresql://...`.
    Migrates an archive of an earlier schema; ArchiveVersionError for one of a later schema."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")  # sqlite:///relative.db, sqlite:////absolute.db
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            return Archive(conn, "?", "BLOB", path)
        except BaseException:
            conn.close()
            raise
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        pg = psycopg.connect(url)
        try:
            return Archive(pg, "%s", "BYTEA", _without_password(url))
        except BaseException:
            pg.close()
            raise
    raise ValueError(f"archive URL {url!r}: expected sqlite:///<file> or postgresql://...")
