"""Benchmark the compliance gate against a real Redis (a separate DB, cleaned up afterwards).

    .venv/bin/python scripts/bench_gate.py [--redis-url redis://127.0.0.1:6379/14] [--numbers 20000000]

Every figure is printed next to a baseline measured in the same run:
  1. batch decisions per second (including number parsing and time-zone work) vs one decision
     per Redis round trip, and vs the bare pipelined GETBITs for the same numbers;
  2. single-decision latency p50/p99 vs a Redis PING round trip;
  3. import rate and Redis memory for a synthetic registry (>= 20 M numbers over 50 area codes)
     stored as per-NPA bitmaps, vs the same numbers as Redis sets (measured on a sample and
     scaled linearly), extrapolated to the full registry (about 258.5 million numbers).
Not a test: it asserts nothing and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis

from compliance_rules.audit import MemoryAuditSink
from compliance_rules.gate import ComplianceGate
from compliance_rules.importer import ParseStats, iter_numbers
from compliance_rules.location import centroids
from compliance_rules.model import ContactRequest, DialMode
from compliance_rules.numbers import npa_states, parse_number
from compliance_rules.policy import CampaignPolicy
from compliance_rules.ruleset import load_rulebook
from compliance_rules.store import DncStore

FULL_REGISTRY = 258_500_000  # active registrations on 2025-09-30 (FTC FY2025 Data Book)
NPA_COUNT = 50
rng = np.random.default_rng(20261123)


def write_registry(path: Path, npas: list[int], total: int) -> int:
    """One 10-digit number per line, unique, spread evenly over `npas`."""
    per_npa = total // len(npas)
    written = 0
    powers = 10 ** np.arange(9, -1, -1, dtype=np.int64)
    with path.open("wb") as handle:
        for npa in npas:
            locals_ = rng.choice(8_000_000, per_npa, replace=False).astype(np.int64) + 2_000_000
            for part in np.array_split(locals_, 8):
                numbers = npa * 10**7 + part
                digits = ((numbers[:, None] // powers) % 10 + 48).astype(np.uint8)
                lines = np.concatenate([digits, np.full((len(numbers), 1), 10, dtype=np.uint8)], axis=1)
                handle.write(lines.tobytes())
            written += per_npa
    return written


def random_requests(count: int, npas: list[int], zips: list[str]) -> list[ContactRequest]:
    """Distinct valid numbers (so no parse cache helps), a third with a ZIP code."""
    requests: list[ContactRequest] = []
    while len(requests) < count:
        npa = int(rng.choice(npas))
        phone = f"+1{npa}{rng.integers(200, 1000)}{rng.integers(0, 10000):04d}"
        if not parse_number.__wrapped__(phone).ok:
            continue
        zip_code = str(rng.choice(zips)) if rng.random() < 0.33 else None
        requests.append(ContactRequest(phone, lead_id=f"lead-{len(requests)}", zip_code=zip_code))
    return requests


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_decisions(store: DncStore, npas: list[int]) -> None:
    book = load_rulebook()
    gate = ComplianceGate(store, MemoryAuditSink(), book, redis_budget=5.0)
    policy = CampaignPolicy(campaign_id="bench", dial_mode=DialMode.MANUAL)
    now = datetime(2026, 3, 3, 17, 0, tzinfo=UTC)
    zips = sorted(centroids()[1])[::50]
    all_npas = sorted(npa_states())
    await gate.decide_many(random_requests(200, all_npas, zips), policy, now)  # warm caches of static data

    batch_size, batches = 500, 20
    requests = random_requests(batch_size * batches, all_npas, zips)
    parse_number.cache_clear()
    started = time.perf_counter()
    for i in range(batches):
        await gate.decide_many(requests[i * batch_size : (i + 1) * batch_size], policy, now)
    batch_rate = len(requests) / (time.perf_counter() - started)

    singles = random_requests(2000, all_npas, zips)
    parse_number.cache_clear()
    latencies: list[float] = []
    for request in singles:
        t0 = time.perf_counter()
        await gate.decide(request, policy, now)
        latencies.append((time.perf_counter() - t0) * 1000)
    single_rate = len(singles) / (sum(latencies) / 1000)

    numbers = [parse_number(r.phone) for r in requests]
    started = time.perf_counter()
    for i in range(batches):
        pipe = store.redis.pipeline(transaction=False)
        for number in numbers[i * batch_size : (i + 1) * batch_size]:
            pipe.getbit(store.list_key("federal", number.npa), number.local)
        await pipe.execute()
    getbit_rate = len(numbers) / (time.perf_counter() - started)

    pings: list[float] = []
    for _ in range(2000):
        t0 = time.perf_counter()
        await store.redis.ping()
        pings.append((time.perf_counter() - t0) * 1000)

    print("\n== decisions (10,000 distinct numbers, 1/3 with ZIP codes, every list + caps fetched) ==")
    print(f"batch decide_many (500/batch): {batch_rate:10,.0f} decisions/s")
    print(f"baseline: one decide() per round trip: {single_rate:10,.0f} decisions/s  -> batch is {batch_rate / single_rate:.1f}x")
    print(f"baseline: bare pipelined GETBIT (federal only, no rules): {getbit_rate:10,.0f} lookups/s "
          f"-> full decisions run at {batch_rate / getbit_rate:.2f}x of bare lookups")
    print(f"single decision latency: p50 {percentile(latencies, 0.5):.3f} ms, p99 {percentile(latencies, 0.99):.3f} ms")
    print(f"baseline Redis PING round trip: p50 {percentile(pings, 0.5):.3f} ms, p99 {percentile(pings, 0.99):.3f} ms")


async def memory_of(client: aioredis.Redis, pattern: str) -> int:
    total = 0
    async for key in client.scan_iter(match=pattern, count=1000):
        total += int(await client.memory_usage(key, samples=0) or 0)
    return total


async def bench_import(store: DncStore, npas: list[int], total: int, sample: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "registry.txt"
        t0 = time.perf_counter()
        written = write_registry(path, npas, total)
        print(f"\n== import: synthetic registry of {written:,} numbers over {len(npas)} area codes "
              f"({path.stat().st_size / 1e6:.0f} MB file, written in {time.perf_counter() - t0:.1f} s) ==")
        stats = ParseStats()
        t0 = time.perf_counter()
        result = await store.import_full("federal", iter_numbers(path, stats), date(2026, 3, 1), stats)
        bitmap_seconds = time.perf_counter() - t0
        bitmap_bytes = await memory_of(store.redis, f"{store.prefix}dnc:federal:*")

        # Baseline: the same numbers as Redis sets (per-NPA sets of 7-digit strings), on a sample.
        sample_numbers: list[int] = []
        with path.open("rb") as handle:
            lines = handle.read().split()
        picks = rng.choice(len(lines), sample, replace=False)
        sample_numbers = [int(lines[i]) for i in picks]
        del lines
        t0 = time.perf_counter()
        for start in range(0, sample, 10_000):
            pipe = store.redis.pipeline(transaction=False)
            for number in sample_numbers[start : start + 10_000]:
                npa, local = divmod(number, 10**7)
                pipe.sadd(f"{store.prefix}bench-set:{{{npa}}}", str(local))
            await pipe.execute()
        set_seconds = time.perf_counter() - t0
        set_bytes = await memory_of(store.redis, f"{store.prefix}bench-set:*")

    bitmap_rate = result.numbers / bitmap_seconds
    set_rate = sample / set_seconds
    set_scaled = set_bytes * written / sample
    print(f"bitmap import (parse + build + SET + RENAME): {bitmap_seconds:.1f} s = {bitmap_rate:,.0f} numbers/s")
    print(f"baseline: set import (pipelined SADD, {sample:,}-number sample): {set_rate:,.0f} numbers/s "
          f"-> bitmap import is {bitmap_rate / set_rate:.1f}x faster")
    print(f"bitmap memory: {bitmap_bytes / 1e6:.1f} MB ({bitmap_bytes / written:.2f} bytes/number)")
    print(f"baseline: sets, {sample:,} sample = {set_bytes / 1e6:.1f} MB = {set_bytes / sample:.1f} bytes/number; "
          f"scaled linearly to {written:,}: {set_scaled / 1e6:.0f} MB -> bitmaps use {bitmap_bytes / set_scaled:.2f}x")
    npa_total = len(npa_states())
    per_npa = bitmap_bytes / len(npas)
    print(f"extrapolated to the full registry ({FULL_REGISTRY:,} numbers): bitmaps for all {npa_total} geographic "
          f"area codes = {per_npa * npa_total / 1e6:.0f} MB (size depends on area codes, not numbers); "
          f"sets = {set_bytes / sample * FULL_REGISTRY / 1e9:.1f} GB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--numbers", type=int, default=20_000_000)
    parser.add_argument("--set-sample", type=int, default=1_000_000)
    args = parser.parse_args()
    client = aioredis.from_url(args.redis_url)
    prefix = f"bench-gate:{uuid.uuid4().hex[:8]}:"
    store = DncStore(client, prefix)
    npas = sorted(npa_states())[:NPA_COUNT]
    try:
        await bench_import(store, npas, args.numbers, args.set_sample)
        for state in ("CO", "FL", "IN", "LA", "MA", "MS", "MO", "OK", "PA", "TN", "TX", "WY"):
            await store.set_list_date(f"state:{state}", date(2026, 3, 1))
        await bench_decisions(store, npas)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()
        print(f"\ncleaned up {len(keys)} keys under {prefix!r}")


if __name__ == "__main__":
    asyncio.run(main())
