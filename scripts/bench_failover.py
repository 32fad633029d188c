"""Controller failover on the real stack (not a test): two `dialer serve` with the controller
lease (docs/cluster.md), one active, one on standby, sharing PostgreSQL and Redis.

Measures, per round, in one run on this machine:

* baseline, a clean handover: the active controller gets SIGTERM (drains, releases the lease);
  the time until the standby holds the lease and until its `/v1/health/ready` answers 200;
* failover: the active controller is SIGKILLed (its lease must expire); the same two times.

and prints them, the failover's ratio to the baseline, and the 10 s target. It starts its own
Asterisk node on free ports in a temporary folder and a database of its own on the settings'
PostgreSQL server (both removed after); Redis is the settings', under a prefix of its own.

    .venv/bin/python scripts/bench_failover.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dialer.provision.asterisk import AsteriskInstance, ensure_install
from dialer.provision.ports import free_local_port
from dialer.runtime.lease import LEASE_SECONDS, RENEW_EVERY_SECONDS
from dialer.settings import from_environment
from tests.cluster.controller import Controller


async def _ready(controller: Controller) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{controller.url}/v1/health/ready") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def _wait(controller: Controller, line: str, times: int, within: float) -> float:
    deadline = time.monotonic() + within
    while controller.text().count(line) < times:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{controller.name}: no {line!r} within {within} s (log: {controller.log})")
        await asyncio.sleep(0.05)
    return time.monotonic()


async def _wait_ready(controller: Controller, within: float) -> float:
    deadline = time.monotonic() + within
    while not await _ready(controller):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{controller.name}: not ready within {within} s (log: {controller.log})")
        await asyncio.sleep(0.05)
    return time.monotonic()


async def _start_standby(controller: Controller) -> None:
    line = f"controller {controller.name} on standby"
    before = controller.text().count(line)
    controller.spawn()
    await _wait(controller, line, before + 1, 60)


async def _takeover(leaving: Controller, staying: Controller, *, kill: bool) -> tuple[float, float]:
    """Stop (or kill) the active one; seconds until the standby holds the lease, and is ready."""
    active_line = f"controller {staying.name} active"
    before = staying.text().count(active_line)
    started = time.monotonic()
    if kill:
        leaving.kill()
    else:
        await asyncio.to_thread(leaving.stop)
    taken = await _wait(staying, active_line, before + 1, 60)
    ready = await _wait_ready(staying, 60)
    return taken - started, ready - started


async def _database(admin_dsn: str, name: str, *, drop: bool = False) -> None:
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if drop else f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def run(rounds: int) -> int:
    base = from_environment()
    admin_dsn = base.pg_dsn.rsplit("/", 1)[0] + "/postgres"
    database = f"bench_failover_{uuid.uuid4().hex[:8]}"
    await _database(admin_dsn, database)
    workdir = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    install = ensure_install(base, say=lambda _: None)
    node = AsteriskInstance.for_settings(
        install, base, name=f"bench-failover-{uuid.uuid4().hex[:6]}", ari_port=free_local_port(),
        sip_port=free_local_port(), carrier_port=free_local_port(), rtp_start=46000, rtp_end=46999)
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("DIALER_")},
        "DIALER_CONFIG": "", "DIALER_PG_DSN": admin_dsn.rsplit("/", 1)[0] + f"/{database}", "DIALER_REDIS_URL": base.redis_url,
        "DIALER_REDIS_PREFIX": f"bench-failover:{uuid.uuid4().hex[:8]}:",
        "DIALER_ARI_PORT": str(node.config.ari_port), "DIALER_ARI_PASSWORD": node.config.ari_password,
        "DIALER_ARI_APP": node.config.ari_app, "DIALER_CONTROLLER_LEASE": "true",
        "DIALER_RECORDINGS_DIR": str(workdir / "recordings"), "DIALER_RECORDING_KEYS_DIR": str(workdir / "keys"),
        "DIALER_AUDIT_KEYS_DIR": str(workdir / "audit-keys"), "DIALER_LOG_FORMAT": "json",
        "DIALER_INSTANCE": "bench-failover",
    }
    first, second = Controller("x", env, workdir), Controller("y", env, workdir)
    clean: list[tuple[float, float]] = []
    killed: list[tuple[float, float]] = []
    try:
        node.start()
        first.spawn()
        await _wait(first, "controller x active", 1, 60)
        await _wait_ready(first, 60)
        active, standby = first, second
        for _ in range(rounds):
            # Baseline: a clean handover, then the old active one back on standby.
            await _start_standby(standby)
            clean.append(await _takeover(active, standby, kill=False))
            active, standby = standby, active
            await _start_standby(standby)
            await asyncio.sleep(RENEW_EVERY_SECONDS * 1.5)  # a renewal or two in: the lease's full length runs
            killed.append(await _takeover(active, standby, kill=True))
            active, standby = standby, active
    finally:
        first.stop()
        second.stop()
        node.stop()
        node.remove()
        await _database(admin_dsn, database, drop=True)

    def line(what: str, values: list[float]) -> str:
        return f"  {what:<34} median {statistics.median(values):5.2f} s   max {max(values):5.2f} s"

    print(f"controller failover, {rounds} rounds (lease {LEASE_SECONDS:.0f} s, renewed every "
          f"{RENEW_EVERY_SECONDS:.0f} s, standby tries every 1 s)")
    print("baseline: the active controller stopped cleanly (SIGTERM: drains, releases the lease)")
    print(line("standby holds the lease", [c[0] for c in clean]))
    print(line("standby ready (/v1/health/ready)", [c[1] for c in clean]))
    print("failover: the active controller SIGKILLed (its lease expires)")
    print(line("standby holds the lease", [k[0] for k in killed]))
    print(line("standby ready (/v1/health/ready)", [k[1] for k in killed]))
    ratio = statistics.median([k[1] for k in killed]) / statistics.median([c[1] for c in clean])
    worst = max(k[1] for k in killed)
    print(f"failover / clean handover (ready, medians): {ratio:.2f}x;  worst failover {worst:.2f} s "
          f"against the 10 s target: {'met' if worst < 10 else 'MISSED'}")
    return 0 if worst < 10 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    return asyncio.run(run(args.rounds))


if __name__ == "__main__":
    raise SystemExit(main())
