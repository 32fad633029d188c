"""Benchmark the wallboard's live updates at 100 live calls: from a call appearing in the
runtime to the supervisor's WebSocket (`GET /v1/events?interval=0.25`, as the console asks)
delivering the `calls` message that has it.

    nice -n 10 .venv/bin/python scripts/bench_wallboard.py [--calls 100] [--rounds 40]

The API app is the real one (real PostgreSQL for the token, real Redis), serving on a local
port; the live calls come from a stand-in for the call runtimes holding `--calls` calls (the
stream reads the runtimes' memory only, so this measures the stream: the comparison every
interval, the serialisation of 100 calls and the WebSocket). A baseline in the same run: the
same with 1 live call. Prints p50/p99 in milliseconds. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compliance_rules.store import DncStore  # noqa: E402
from crm_bridge import migrate  # noqa: E402
from crm_bridge.outbox import Outbox  # noqa: E402
from crm_bridge.store import CrmStore, TokenRole  # noqa: E402
from dialer.api.http import ApiDependencies  # noqa: E402
from dialer.app import build_app  # noqa: E402
from dialer.runtime.live import LiveCall  # noqa: E402
from tests.support.databases import ADMIN_DSN, dsn_for  # noqa: E402


class LiveCalls:
    """Stands in for the monitor runtime's view of the call runtimes."""

    def __init__(self) -> None:
        self.calls: list[LiveCall] = []

    def add(self) -> str:
        call_id = f"call-{uuid.uuid4().hex}"
        self.calls.append(LiveCall(call_id=call_id, kind="campaign", direction="outbound", state="bridged",
                                   connected=True, agent_id=f"agent-{len(self.calls)}", agent_channel=None,
                                   bridge_id=f"{call_id}-bridge", lead_number="+12125550100",
                                   campaign_id="bench", started_at=datetime.now(UTC)))
        return call_id

    def live_calls(self) -> list[LiveCall]:
        return list(self.calls)

    def monitors_of(self, call_id: str) -> list[Any]:
        return []


async def measure(url: str, token: str, live: LiveCalls, count: int, rounds: int) -> list[float]:
    live.calls.clear()
    for _ in range(count - 1):
        live.add()
    samples = []
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{url}/v1/events?interval=0.25&access_token={token}") as socket:
        await socket.receive_json()  # subscribed
        await socket.receive_json()  # snapshot
        for _ in range(rounds):
            await asyncio.sleep(random.uniform(0.05, 0.3))  # any phase of the stream's tick
            started = time.perf_counter()
            call_id = live.add()
            while True:
                message = await socket.receive_json()
                if message["type"] == "calls" and any(call["call_id"] == call_id for call in message["calls"]):
                    samples.append((time.perf_counter() - started) * 1000)
                    break
            live.calls.pop(0)  # a call ends: the board stays at `count` calls
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    name = f"dialer_bench_wallboard_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    redis = aioredis.from_url("redis://127.0.0.1:6379/13")
    try:
        conn = await asyncpg.connect(dsn_for(name))
        await migrate.migrate(conn)
        await conn.close()
        store = await CrmStore.open(dsn_for(name))
        with tempfile.TemporaryDirectory() as state:
            async with Outbox(Path(state), dsn_for(name)) as outbox:
                live = LiveCalls()
                app = build_app(ApiDependencies(store=store, records=outbox, dnc=DncStore(redis, f"bench-{name}:")),
                                monitors=live)  # type: ignore[arg-type]
                token = (await store.issue_token(TokenRole.SUPERVISOR)).secret
                server = TestServer(app)
                await server.start_server()
                try:
                    url = str(server.make_url("")).rstrip("/")
                    results = [(label, await measure(url, token, live, count, args.rounds))
                               for label, count in (("baseline: 1 live call", 1),
                                                    (f"{args.calls} live calls", args.calls))]
                finally:
                    await server.close()
        await store.close()
    finally:
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print("a new live call to the wallboard's WebSocket message (interval 0.25 s):")
    for label, samples in results:
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        print(f"  {label:24} p50 {statistics.median(samples):6.1f} ms   p99 {p99:6.1f} ms   ({len(samples)} rounds)")


if __name__ == "__main__":
    asyncio.run(main())
