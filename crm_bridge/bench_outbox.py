"""Outbox throughput, measured against baselines in the same run.

    python -m crm_bridge.bench_outbox [--dsn postgresql://postgres@127.0.0.1:5432/postgres] [-n 2000]

Prints: durable puts per second awaited one by one (each waits for its own fsync) and issued
concurrently (group commit: one fsync for many puts), and delivery to PostgreSQL per second with
batches of 200 versus batches of 1. Uses a scratch database `dialer_bench_*`, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from crm_bridge import migrate
from crm_bridge.backoff import Backoff
from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import Outbox


def _opt_out(index: int) -> dict[str, object]:
    return {
        "opt_out_id": str(uuid.uuid4()),
        "phone": f"+1404{index % 10_000_000:07d}",
        "source": "bench",
        "created_at": datetime.now(UTC),
    }


async def _puts(state_dir: Path, count: int, concurrent: bool) -> float:
    async with Outbox(state_dir, "postgresql://postgres@127.0.0.1:1/none", backoff=Backoff(5, 5)) as outbox:
        started = time.perf_counter()
        if concurrent:
            await asyncio.gather(*(outbox.put(RecordKind.OPT_OUT, _opt_out(i)) for i in range(count)))
        else:
            for i in range(count):
                await outbox.put(RecordKind.OPT_OUT, _opt_out(i))
        elapsed = time.perf_counter() - started
        await outbox.close(timeout=0)
    return count / elapsed


async def _delivery(state_dir: Path, dsn: str, count: int, batch_size: int) -> float:
    outbox = Outbox(state_dir, dsn, batch_size=batch_size, poll_interval=3600)
    # Fill the file first (delivery not started), then time the drain alone.
    await outbox.start()
    await outbox.put_many([(RecordKind.OPT_OUT, _opt_out(i)) for i in range(count)])
    started = time.perf_counter()
    assert await outbox.flush(600)
    elapsed = time.perf_counter() - started
    await outbox.close()
    return count / elapsed


async def main(admin_dsn: str, count: int) -> None:
    database = f"dialer_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = f"{admin_dsn.rpartition('/')[0]}/{database}"
    try:
        conn = await asyncpg.connect(dsn)
        await migrate.migrate(conn)
        await conn.close()
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            sequential = await _puts(root / "a", count // 4, concurrent=False)
            grouped = await _puts(root / "b", count, concurrent=True)
            print(f"durable puts, awaited one by one : {sequential:10.0f} /s  (baseline)")
            print(f"durable puts, {count} concurrent   : {grouped:10.0f} /s  ({grouped / sequential:.1f}x, group commit)")
            single = await _delivery(root / "c", dsn, count // 4, batch_size=1)
            batched = await _delivery(root / "d", dsn, count, batch_size=200)
            print(f"delivery to PostgreSQL, batch 1  : {single:10.0f} /s  (baseline)")
            print(f"delivery to PostgreSQL, batch 200: {batched:10.0f} /s  ({batched / single:.1f}x)")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin DSN")
    parser.add_argument("-n", type=int, default=2000, help="records per measurement")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.dsn, arguments.n))
