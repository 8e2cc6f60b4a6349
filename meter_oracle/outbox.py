"""The durable outbox (SQLite, WAL): every signed reading is committed here before it is sent,
with one delivery row per settlement node (pending -> delivered | refused). Refused frames are
kept too, with their reason and raw bytes. Each thread opens its own Outbox on the same file."""
from __future__ import annotations

import sqlite3
import time
from decimal import Decimal
from pathlib import Path

from meter_oracle.checks import LastReading
from meter_oracle.reading import SignedReading

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY,
    meter_id BLOB NOT NULL, period INTEGER NOT NULL, timestamp INTEGER NOT NULL,
    import_mwh INTEGER NOT NULL, export_mwh INTEGER NOT NULL, signature BLOB NOT NULL,
    import_wh TEXT NOT NULL, export_wh TEXT NOT NULL, raw_frame BLOB NOT NULL, protocol TEXT NOT NULL,
    UNIQUE (meter_id, timestamp)
);
CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS deliveries (
    reading_id INTEGER NOT NULL REFERENCES readings(id), node TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'refused')),
    reason TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node, reading_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (node, state, reading_id);
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, source TEXT NOT NULL, protocol TEXT NOT NULL,
    meter TEXT, reason TEXT NOT NULL, raw_frame BLOB NOT NULL
);
"""


class OutboxError(RuntimeError):
    """The outbox file cannot be used as it is: the message names the file and what is wrong."""


class Outbox:
    def __init__(self, path: str | Path) -> None:
        """Opens the outbox at `path`, creating it only where no file exists: an empty or
        unreadable file is refused (OutboxError), never silently replaced by a new outbox."""
        self.path = Path(path)
        if self.path.exists() and self.path.stat().st_size == 0:
            raise OutboxError(f"outbox {self.path} is an empty file, not an outbox: restore it from a backup "
                              "or move it away to start a new one")
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as e:
            raise OutboxError(f"outbox {self.path} cannot be opened: {e}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a committed reading survives power loss
            self._db.executescript(SCHEMA)
            self._db.execute("SELECT count(*) FROM readings").fetchone()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise OutboxError(f"outbox {self.path} is corrupt or not an outbox ({e}): restore it from a backup "
                              "or move it away to start a new one") from None

    def close(self) -> None:
        self._db.close()

    def set_nodes(self, names: list[str]) -> None:
        """Registers the settlement nodes; a node new to this outbox gets every reading so far."""
        with self._tx():
            for name in names:
                self._db.execute("INSERT OR IGNORE INTO nodes (name) VALUES (?)", (name,))
                self._db.execute(
                    "INSERT OR IGNORE INTO deliveries (reading_id, node, state) "
                    "SELECT id, ?, 'pending' FROM readings",
                    (name,),
                )

    def add(self, r: SignedReading) -> int:
        """Stores the reading and a pending delivery to every node, in one transaction."""
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO readings (meter_id, period, timestamp, import_mwh, export_mwh, signature, "
                "import_wh, export_wh, raw_frame, protocol) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (r.meter_id, r.period, r.timestamp, r.import_mwh, r.export_mwh, r.signature,
                 str(r.import_wh), str(r.export_wh), r.raw_frame, r.protocol),
            )
            rid = int(cur.lastrowid or 0)
            self._db.execute(
                "INSERT INTO deliveries (reading_id, node, state) SELECT ?, name, 'pending' FROM nodes", (rid,)
            )
        return rid

    def add_refusal(self, source: str, protocol: str, meter: str | None, reason: str, raw: bytes) -> None:
        self._db.execute(
            "INSERT INTO refusals (at, source, protocol, meter, reason, raw_frame) VALUES (?,?,?,?,?,?)",
            (time.time(), source, protocol, meter, reason, raw),
        )

    def last_reading(self, meter_id: bytes) -> LastReading | None:
        row = self._db.execute(
            "SELECT timestamp, import_mwh, export_mwh FROM readings WHERE meter_id = ? "
            "ORDER BY timestamp DESC LIMIT 1",
            (meter_id,),
        ).fetchone()
        return LastReading(*row) if row else None

    def pending(self, node: str, limit: int) -> list[tuple[int, SignedReading]]:
        rows = self._db.execute(
            "SELECT r.id, r.meter_id, r.period, r.timestamp, r.import_mwh, r.export_mwh, r.signature, "
            "r.import_wh, r.export_wh, r.raw_frame, r.protocol FROM deliveries d "
            "JOIN readings r ON r.id = d.reading_id WHERE d.node = ? AND d.state = 'pending' "
            "ORDER BY d.reading_id LIMIT ?",
            (node, limit),
        ).fetchall()
        return [
            (row[0], SignedReading(meter_id=row[1], period=row[2], timestamp=row[3], import_mwh=row[4],
                                   export_mwh=row[5], signature=row[6], import_wh=Decimal(row[7]),
                                   export_wh=Decimal(row[8]), raw_frame=row[9], protocol=row[10]))
            for row in rows
        ]

    def mark(self, node: str, delivered: list[int], refused: dict[int, str], attempted: list[int]) -> None:
        """Records one delivery attempt's outcome; readings in neither map stay pending."""
        with self._tx():
            self._db.executemany(
                "UPDATE deliveries SET attempts = attempts + 1 WHERE node = ? AND reading_id = ?",
                [(node, rid) for rid in attempted],
            )
            self._db.executemany(
                "UPDATE deliveries SET state = 'delivered' WHERE node = ? AND reading_id = ? AND state = 'pending'",
                [(node, rid) for rid in delivered],
            )
            self._db.executemany(
                "UPDATE deliveries SET state = 'refused', reason = ? WHERE node = ? AND reading_id = ? "
                "AND state = 'pending'",
                [(reason, node, rid) for rid, reason in refused.items()],
            )

    def counts(self) -> dict[str, dict[str, int]]:
        """{node: {state: n}}"""
        out: dict[str, dict[str, int]] = {}
        for node, state, n in self._db.execute("SELECT node, state, count(*) FROM deliveries GROUP BY node, state"):
            out.setdefault(node, {})[state] = n
        return out

    def refusals(self) -> list[tuple[str, str, str | None, str]]:
        return self._db.execute("SELECT source, protocol, meter, reason FROM refusals ORDER BY id").fetchall()

    def refusal_counts(self) -> dict[tuple[str, str], int]:
        """{(source, reason): n} over every refusal kept."""
        rows = self._db.execute("SELECT source, reason, count(*) FROM refusals GROUP BY source, reason")
        return {(source, reason): n for source, reason, n in rows}

    def backlog(self) -> dict[str, int]:
        """{node: readings not yet delivered}, every configured node (0 when none wait)."""
        out = {name: 0 for (name,) in self._db.execute("SELECT name FROM nodes")}
        for node, n in self._db.execute("SELECT node, count(*) FROM deliveries WHERE state = 'pending' GROUP BY node"):
            out[node] = n
        return out

    def reading_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM readings").fetchone()[0]

    def refusal_reasons(self, node: str) -> dict[int, str]:
        return dict(self._db.execute(
            "SELECT reading_id, reason FROM deliveries WHERE node = ? AND state = 'refused'", (node,)
        ).fetchall())

    def _tx(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
