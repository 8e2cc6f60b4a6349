"""The node's archive: every accepted reading (with its exact decimal registers and raw frame),
the batches it built or adopted with their leaves, each meter's latest final register, and the
fraud proofs it sent. One interface over SQLite (default, one file) and PostgreSQL (psycopg 3); the SQL
is shared, only placeholders, blob types and connection handling differ.

All methods are thread-safe (one connection behind a lock) and each is one transaction, so a
node killed at any point resumes from a consistent archive."""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Iterable

from rust_core.wire import BatchHeader, Leaf, Reading, RefusalCode, Register, SignedReading

BATCH_BUILT = "built"          # built and signed by this node, not yet on chain as final
BATCH_FINAL = "final"          # final on chain; its leaves are the registers the next period counts from
BATCH_REJECTED = "rejected"    # rejected on chain by a fraud proof
BATCH_SUPERSEDED = "superseded"  # another root became final for its period and group
ARCHIVE_MAX = 2**63 - 1        # integers are kept in signed 64-bit columns (SQLite INTEGER, BIGINT)

_SCHEMA = [
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

@dataclass(frozen=True)
class BatchRecord:
    period: int
    group_id: bytes
    root: bytes
    total_import: int
    total_export: int
    count: int
    own: bool
    signature: bytes | None
    status: str
    tx_hash: str | None
    gas_used: int | None

    @property
    def header(self) -> BatchHeader:
        return BatchHeader(self.period, self.group_id, self.root, self.total_import, self.total_export, self.count)


class Archive:
    """Use open_archive(url)."""

    def __init__(self, conn, placeholder: str, blob: str) -> None:
        self._conn = conn
        self._ph = placeholder
        self._lock = threading.Lock()
        with self._tx() as cur:
            for stmt in _SCHEMA:
                cur.execute(stmt.format(blob=blob))

    # -- plumbing --------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self._ph == "?" else sql.replace("?", self._ph)

    class _Tx:
        def __init__(self, archive: "Archive") -> None:
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

    def _tx(self) -> "_Tx":
        return Archive._Tx(self)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- readings --------------------------------------------------------------------------
    def store_readings(self, items: list[tuple[SignedReading, bytes]]) -> list[str | tuple[RefusalCode, str] | None]:
        """Stores (reading, group id) pairs in one transaction. Per item: None if stored,
        "duplicate" if the same reading (meter, timestamp, signature) is already archived, else
        (code, message) of why it was refused: another reading at the same meter and time, or
        registers that would run backwards against the meter's archived readings before or after it."""
        out: list[str | tuple[RefusalCode, str] | None] = []
        now = time.time()
        with self._tx() as tx:
            for r, group in items:
                same = tx.execute(
                    "SELECT signature FROM readings WHERE meter_id = ? AND ts = ?", (r.meter_id, r.timestamp)
                ).fetchone()
                if same is not None:
                    out.append("duplicate" if bytes(same[0]) == r.signature else
                               (RefusalCode.CONFLICTING_READING,
                                f"replay: meter already has a different reading at timestamp {r.timestamp}"))
                    continue
                before = tx.execute(
                    "SELECT ts, import_mwh, export_mwh FROM readings WHERE meter_id = ? AND ts < ? "
                    "ORDER BY ts DESC LIMIT 1", (r.meter_id, r.timestamp),
                ).fetchone()
                after = tx.execute(
                    "SELECT ts, import_mwh, export_mwh FROM readings WHERE meter_id = ? AND ts > ? "
                    "ORDER BY ts LIMIT 1", (r.meter_id, r.timestamp),
                ).fetchone()
                if before and (before[1] > r.import_mwh or before[2] > r.export_mwh):
                    out.append((RefusalCode.REGISTER_REGRESSION, f"below the reading at timestamp {before[0]}"))
                    continue
                if after and (after[1] < r.import_mwh or after[2] < r.export_mwh):
                    out.append((RefusalCode.REGISTER_REGRESSION, f"above the reading at timestamp {after[0]}"))
                    continue
                tx.execute(
                    "INSERT INTO readings VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (r.meter_id, r.period, r.timestamp, r.import_mwh, r.export_mwh, r.signature, str(r.import_wh),
                     str(r.export_wh), r.raw_frame, r.protocol, group, now),
                )
                out.append(None)
        return out

    def has_reading(self, meter_id: bytes, ts: int, signature: bytes) -> bool:
        with self._tx() as tx:
            row = tx.execute("SELECT signature FROM readings WHERE meter_id = ? AND ts = ?", (meter_id, ts)).fetchone()
        return row is not None and bytes(row[0]) == signature

    def latest_readings(self, period: int, group_id: bytes) -> list[tuple[Reading, bytes]]:
        """Each meter's latest reading of the period in the group, ascending by meter id, with
        its signature."""
        with self._tx() as tx:
            rows = tx.execute(
                "SELECT meter_id, ts, import_mwh, export_mwh, signature FROM readings "
                "WHERE period = ? AND group_id = ? ORDER BY meter_id, ts",
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
            if tx.execute(
                "SELECT 1 FROM batches WHERE period = ? AND group_id = ? AND root = ?",
                (rec.period, rec.group_id, rec.root),
            ).fetchone():
                return
            tx.execute(
                "INSERT INTO batches VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec.period, rec.group_id, rec.root, rec.total_import, rec.total_export, rec.count, int(rec.own),
                 rec.signature, rec.status, rec.tx_hash, rec.gas_used, time.time()),
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
                "SELECT period, group_id, root, total_import, total_export, count, own, signature, status, "
                f"tx_hash, gas_used FROM batches WHERE {where} ORDER BY period, built_at",
                params,
            ).fetchall()
        return [
            BatchRecord(p, bytes(g), bytes(r), ti, te, c, bool(o), bytes(s) if s is not None else None, st, tx_, gas)
            for p, g, r, ti, te, c, o, s, st, tx_, gas in rows
        ]

    def own_batch(self, period: int, group_id: bytes) -> BatchRecord | None:
        found = self._batches("period = ? AND group_id = ? AND own = 1", (period, group_id))
        return found[0] if found else None

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


def open_archive(url: str) -> Archive:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:` or `postgresql://...`."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")  # sqlite:///relative.db, sqlite:////absolute.db
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return Archive(conn, "?", "BLOB")
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        conn = psycopg.connect(url)
        return Archive(conn, "%s", "BYTEA")
    raise ValueError(f"archive URL {url!r}: expected sqlite:///<file> or postgresql://...")
