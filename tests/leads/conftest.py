"""Fixtures for list imports: a CRM database of the test's own, and the DNC store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from compliance_rules.store import DncStore
from crm_bridge.migrate import migrate
from tests.support.databases import ADMIN_DSN, dsn_for


@pytest.fixture
async def crm_dsn() -> AsyncIterator[str]:
    """A migrated CRM database for one test (the duplicate search sees every lead in it)."""
    name = f"dialer_test_leads_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(dsn_for(name))
        await migrate(conn)
        await conn.close()
        yield dsn_for(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def dnc(redis_client: aioredis.Redis, redis_prefix: str) -> DncStore:
    return DncStore(redis_client, redis_prefix)
