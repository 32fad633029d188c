"""A private stack for the benchmark scripts (not a test): its own Asterisk instance on free
ports, its own PostgreSQL database and a private Redis key prefix (database 14), removed when
the block ends, whatever happens inside it.

    async with bench_stack() as stack:
        async with dialer_services(stack.settings, ...) as services:
            ...
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from tempfile import TemporaryDirectory

import asyncpg
import redis.asyncio as aioredis

from dialer.provision.asterisk import AsteriskInstance, ensure_install
from dialer.provision.ports import free_local_port
from dialer.settings import Settings, from_environment

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/14"


@dataclass(frozen=True)
class BenchStack:
    settings: Settings  # the dialer's settings for this stack (ARI, PostgreSQL, Redis prefix, dirs)
    instance: AsteriskInstance


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@contextlib.asynccontextmanager
async def bench_stack() -> AsyncIterator[BenchStack]:
    run_id = uuid.uuid4().hex[:8]
    database = f"dialer_bench_{run_id}"
    prefix = f"bench:{run_id}:"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    try:
        asterisk_settings = from_environment(
            instance=f"bench-{run_id}",
            ari_port=free_local_port(),
            sip_port=free_local_port(),
            carrier_port=free_local_port(),
            ari_password=uuid.uuid4().hex,
            rtp_start=40000,
            rtp_end=50000,
        )
        instance = AsteriskInstance.for_settings(ensure_install(asterisk_settings), asterisk_settings)
        instance.start()
        try:
            with TemporaryDirectory() as workdir:
                settings = from_environment(
                    {},
                    pg_dsn=f"postgresql://postgres@127.0.0.1:5432/{database}",
                    redis_url=REDIS_URL,
                    redis_prefix=prefix,
                    ari_port=instance.config.ari_port,
                    ari_password=instance.config.ari_password,
                    state_root=f"{workdir}/state",
                    recordings_root=f"{workdir}/recordings",
                    instance=instance.config.name,
                )
                yield BenchStack(settings, instance)
        finally:
            instance.stop()
            instance.remove()
    finally:
        client = aioredis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
