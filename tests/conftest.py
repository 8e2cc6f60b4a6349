"""Fixtures for every test folder: an archive URL for each backend the node supports."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

DSN_FILE = Path(__file__).resolve().parents[1] / "var" / "postgres.dsn"


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'archive.db'}"
        return
    dsn = os.environ.get("SETTLEMENT_PG_DSN") or (DSN_FILE.read_text().strip() if DSN_FILE.exists() else "")
    if not dsn:
        print(f"PostgreSQL archive tests skipped: SETTLEMENT_PG_DSN unset and {DSN_FILE} missing (run `make postgres`)")
        pytest.skip(f"SETTLEMENT_PG_DSN unset and {DSN_FILE} missing: run `make postgres` (scripts/ensure_postgres.sh)")
    import psycopg

    name = "node_test_" + secrets.token_hex(4)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield dsn.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
