"""Fixtures for the CRM bridge tests: migrated databases and scratch databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from crm_bridge import migrate
from tests.support.databases import ADMIN_DSN, dsn_for

RUN_ID = uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def crm_dsn(pg_dsn: str) -> str:
    """The run's database with every CRM migration applied."""

    async def apply() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await migrate.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(apply())
    return pg_dsn


@pytest.fixture
def scratch_db_name() -> Iterator[str]:
    """A database name reserved for one test (not created); dropped afterwards if it exists."""
    name = f"dialer_test_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    yield name

    async def drop() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
async def scratch_dsn(scratch_db_name: str) -> str:
    """DSN of an empty database created for one test."""
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{scratch_db_name}"')
    finally:
        await conn.close()
    return dsn_for(scratch_db_name)


@pytest.fixture
async def crm_conn(crm_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(crm_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def migrated_scratch_dsn(scratch_dsn: str) -> str:
    """A private, fully migrated database for tests that count rows."""
    conn = await asyncpg.connect(scratch_dsn)
    try:
        await migrate.migrate(conn)
    finally:
        await conn.close()
    return scratch_dsn

