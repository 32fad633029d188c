"""Scratch PostgreSQL databases for tests, on the same server as the shared `pg_dsn` fixture."""

from __future__ import annotations

import os

ADMIN_DSN = os.environ.get("DIALER_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def dsn_for(database: str) -> str:
    """DSN of `database` on the test server (name scratch databases `dialer_test_*`)."""
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"
