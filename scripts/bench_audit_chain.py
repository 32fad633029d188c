"""Benchmark: what the audit chain costs where the outbox applies records.

    nice -n 10 .venv/bin/python scripts/bench_audit_chain.py [--batch 200] [--rounds 9]

In one scratch database (dropped at the end), batches of opt-outs and of call snapshots are
applied the way the outbox does it (one transaction per batch, `outbox_applied` row included),
alternately without the chain (the plain statements the outbox ran before the trail existed:
the baseline) and with it (`apply_record`: the chain lock, each row appended). Alternating in
one run keeps the machine's other load out of the ratio. Prints records per second, medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from crm_bridge import migrate
from crm_bridge.apply import apply_record
from crm_bridge.audit_log import ChainHeads, lock_chains
from crm_bridge.kinds import RecordKind
from crm_bridge.records import validate

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _opt_out(index: int) -> dict[str, Any]:
    return validate("opt_out", {"opt_out_id": str(uuid.uuid4()), "phone": f"+1404{index % 10_000_000:07d}",
                                "source": "bench", "created_at": datetime.now(UTC)})


def _call(index: int) -> dict[str, Any]:
    return validate("call", {"call_id": f"bench-{uuid.uuid4().hex}", "version": 1, "direction": "outbound",
                             "lead_number": f"+1404{index % 10_000_000:07d}", "requested_at": datetime.now(UTC)})


async def _plain(conn: asyncpg.Connection, kind: RecordKind, records: list[dict[str, Any]]) -> None:
    async with conn.transaction():
        for index, record in enumerate(records):
            await conn.execute("INSERT INTO outbox_applied (source_id, outbox_id, kind) VALUES ($1, $2, $3)",
                               "plain", index + int(time.time_ns() % 10**12), kind.value)
            if kind is RecordKind.OPT_OUT:
                await conn.execute(
                    "INSERT INTO opt_outs (opt_out_id, phone, source, lead_id, call_id, created_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (opt_out_id) DO NOTHING",
                    record["opt_out_id"], record["phone"], record["source"], None, None,
                    datetime.fromisoformat(record["created_at"]))
            else:
                await conn.execute(
                    "INSERT INTO calls (call_id, version, direction, lead_number, requested_at) VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (call_id) DO UPDATE SET version = EXCLUDED.version WHERE calls.version < EXCLUDED.version",
                    record["call_id"], record["version"], record["direction"], record["lead_number"],
                    datetime.fromisoformat(record["requested_at"]))


async def _chained(conn: asyncpg.Connection, kind: RecordKind, records: list[dict[str, Any]]) -> None:
    async with conn.transaction():
        await lock_chains(conn)
        heads = ChainHeads()
        for index, record in enumerate(records):
            await conn.execute("INSERT INTO outbox_applied (source_id, outbox_id, kind) VALUES ($1, $2, $3)",
                               "chained", index + int(time.time_ns() % 10**12), kind.value)
            await apply_record(conn, kind, record, origin=f"bench:{index}", heads=heads)


async def run(args: argparse.Namespace) -> None:
    name = f"dialer_bench_chain_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        conn = await asyncpg.connect(args.admin_dsn.rsplit("/", 1)[0] + f"/{name}")
        await migrate.migrate(conn)
        for kind, make in ((RecordKind.OPT_OUT, _opt_out), (RecordKind.CALL, _call)):
            plain, chained = [], []
            for round_ in range(args.rounds):
                for label, apply, rates in (("plain", _plain, plain), ("chained", _chained, chained)):
                    records = [make(round_ * args.batch + i) for i in range(args.batch)]
                    started = time.perf_counter()
                    await apply(conn, kind, records)
                    rates.append(args.batch / (time.perf_counter() - started))
                    del label
            base, with_chain = statistics.median(plain), statistics.median(chained)
            print(f"{kind.value:12} batches of {args.batch}: without the chain {base:7.0f} /s (baseline), "
                  f"with it {with_chain:7.0f} /s ({with_chain / base:.2f}x)")
        await conn.close()
    finally:
        admin = await asyncpg.connect(args.admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--admin-dsn", default=ADMIN_DSN)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
