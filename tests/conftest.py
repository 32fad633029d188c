"""Shared fixtures: a throw-away PostgreSQL database and a private Redis key space per test run.

Tests never touch the user's data: the database is created and dropped per run, and Redis
keys live under a unique prefix in a database number reserved for tests, deleted at the end.

The database is shared by the whole run, and every dialer a test starts restores the opt-out
list from its `opt_outs` rows: a number a test opts out must be dialed by no other test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog

from dialer.provision.asterisk import AsteriskInstance, ensure_install
from dialer.provision.ports import free_local_port
from dialer.settings import from_environment

ADMIN_DSN = os.environ.get("DIALER_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_REDIS_URL = os.environ.get("DIALER_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
RUN_ID = uuid.uuid4().hex[:10]
# One audit signing key for the whole run: the run's database is shared by every test, and a
# dialer refuses to start without the key that signed its audit trail (crm_bridge.audit_keys).
AUDIT_KEYS_DIR = Path(tempfile.gettempdir()) / f"dialer-test-audit-keys-{RUN_ID}"
# Tests build their own settings: a server's /etc/dialer/dialer.toml is never read by them.
os.environ.setdefault("DIALER_CONFIG", "")


def _dsn_for(database: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of an empty database created for this test run and dropped afterwards."""
    import asyncio

    name = f"dialer_test_{RUN_ID}"

    async def create() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    try:
        yield _dsn_for(name)
    finally:
        asyncio.run(drop())


@pytest.fixture(scope="session", autouse=True)
def _audit_keys_removed_after_the_run() -> Iterator[None]:
    from crm_bridge.audit_keys import AuditSigningKey

    AuditSigningKey.load_or_create(AUDIT_KEYS_DIR, chain_signed=False)  # the run's agency key, from the start
    yield
    shutil.rmtree(AUDIT_KEYS_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return TEST_REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to one test; every key under it is deleted afterwards."""
    import asyncio

    prefix = f"dialer-test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    yield prefix

    async def cleanup() -> None:
        client = aioredis.from_url(redis_url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    asyncio.run(cleanup())


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


# ---- Asterisk: one instance per test run, on free ports, beside any running one -------------
@pytest.fixture(scope="session")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskInstance]:
    """A real Asterisk 22 provisioned by the project, with its own ports and directories, and its
    phones' generated SIP credentials in a state folder of its own (`asterisk.sip_credentials`)."""
    settings = from_environment(
        instance=f"test-{RUN_ID}",
        ari_port=free_local_port(),
        sip_port=free_local_port(),
        carrier_port=free_local_port(),
        ari_password=f"test-{uuid.uuid4().hex}",
        state_root=str(tmp_path_factory.mktemp("asterisk-state")),
        rtp_start=30000,
        rtp_end=40000,
    )
    instance = AsteriskInstance.for_settings(ensure_install(settings, say=lambda _: None), settings)
    instance.remove_stale_siblings("test-")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
        instance.remove()


@pytest.fixture
def softphone_factory(asterisk: AsteriskInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start baresip softphones registered to agent endpoints; all stopped after the test."""
    from tests.softphone import Softphone

    phones: list[Softphone] = []

    def start(endpoint: str = "agent1001", auto_answer: bool = True) -> Softphone:
        phone = Softphone(
            tmp_path_factory.mktemp(endpoint),
            endpoint,
            asterisk.sip_credentials(endpoint).password,
            asterisk.config.sip_port,
            auto_answer=auto_answer,
        )
        phones.append(phone)
        phone.start()
        return phone

    yield start
    for phone in phones:
        phone.stop()


@pytest.fixture(autouse=True)
def structlog_configuration() -> Iterator[None]:
    """Each test starts with the logging configuration the run started with: a test that runs a
    `dialer` command in-process (`dialer.cli.main`) sets warnings-only logging, which would hide
    the info lines later tests read with `structlog.testing.capture_logs`."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
