"""A private, migrated database per module for the reports (their counts must be exact)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from crm_bridge import migrate
from tests.support.databases import ADMIN_DSN, dsn_for


@pytest.fixture(scope="module")
def reports_dsn() -> Iterator[str]:
    name = f"dialer_test_reports_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn_for(name))
        try:
            await migrate.migrate(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    yield dsn_for(name)
    asyncio.run(drop())
