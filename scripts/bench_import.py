"""Benchmark a list import with scrub (`crm_bridge.lead_import`) on a synthetic file, against the
gate's per-decision path (`ComplianceGate.decide`) measured in the same run.

    nice -n 10 .venv/bin/python scripts/bench_import.py [--rows 1000000] [--area-codes 60]

1. Writes a CSV of N leads (names, phone, a mobile on 30 %, e-mail, address, state, ZIP, consent
   evidence and time, source, a custom field) over K area codes, with about 1 % malformed rows
   and 2 % repeated phones.
2. Loads DNC lists into Redis (DB 14, a private key prefix): a federal bitmap for each of the K
   area codes at 30 % density (about the registry's share of all numbers), TX and FL state lists
   at 5 %, a few thousand internal, litigator and opt-out numbers; every list dated today.
3. Seeds the CRM (a private PostgreSQL database) with 20,000 leads, 1 % of the file's phones.
4. Imports the file (`import_leads`, report included): rows/s and the time of each phase.
5. Scrub alone: `batch.locate` + `BatchScrubber.scrub` over every number of the file: numbers/s.
6. Baseline: `ComplianceGate.decide`, one number at a time, on a sample of the same numbers.

Prints every figure beside its baseline as a ratio. Not a test: it asserts nothing; it drops its
database and deletes its keys.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import numpy as np
import redis.asyncio as aioredis

from compliance_rules import batch
from compliance_rules.audit import MemoryAuditSink
from compliance_rules.gate import ComplianceGate
from compliance_rules.location import centroids
from compliance_rules.model import ContactRequest, DialMode
from compliance_rules.numbers import npa_states
from compliance_rules.policy import CampaignPolicy
from compliance_rules.ruleset import load_rulebook
from compliance_rules.scrub import BatchScrubber
from compliance_rules.store import DncStore
from crm_bridge.lead_import import ImportPlan, import_leads, new_import_id
from crm_bridge.lead_mapping import parse_mapping
from crm_bridge.migrate import migrate

MAPPING = ("first_name=First Name,last_name=Last Name,phone=Phone,phone=Mobile,email=Email,address=Address,"
           "city=City,state=State,zip=ZIP,consent=Consent URL,consent_at=Consent Date,source=Source,"
           "custom.policy=Policy Type")
HEADER = ["First Name", "Last Name", "Phone", "Mobile", "Email", "Address", "City", "State", "ZIP",
          "Consent URL", "Consent Date", "Source", "Policy Type"]
rng = np.random.default_rng(20261129)


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process (this one, or the PostgreSQL backend doing the import)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pick_area_codes(count: int) -> list[int]:
    """Geographic area codes of one state each, TX and FL among them (they keep state lists)."""
    single = [npa for npa, states in sorted(npa_states().items()) if len(states) == 1]
    chosen = [npa for npa in single if npa_states()[npa][0] in ("TX", "FL")][:8]
    others = [npa for npa in single if npa not in chosen]
    chosen += [int(x) for x in rng.choice(others, count - len(chosen), replace=False)]
    return sorted(chosen)


def valid_numbers(npas: list[int], count: int) -> np.ndarray:
    """`count` distinct valid, dialable, geographic numbers spread over `npas`."""
    found = np.zeros(0, dtype=np.int64)
    while len(found) < count:
        draw = (rng.choice(npas, count) * 10**7 + rng.integers(2_000_000, 10**7, count)).astype(np.int64)
        located = batch.classify(draw)
        found = np.unique(np.concatenate([found, draw[located.ok & located.geographic]]))
    return rng.permutation(found)[:count]


def write_file(path: Path, rows: int, npas: list[int]) -> np.ndarray:
    """The lead file; returns the phone numbers of its rows (first phone)."""
    zips_by_state: dict[str, list[str]] = {}
    for code, (state, _, _, _) in centroids()[1].items():
        zips_by_state.setdefault(state, []).append(code)
    phones = valid_numbers(npas, rows)
    repeats = rng.random(rows) < 0.02  # 2 % repeat an earlier row's phone
    phones[repeats] = phones[rng.integers(0, rows, int(repeats.sum()))]
    mobiles = valid_numbers(npas, rows)
    has_mobile = rng.random(rows) < 0.3
    malformed = rng.random(rows) < 0.01
    states = [npa_states()[int(n) // 10**7][0] for n in phones]
    zip_pick = rng.random(rows)
    sources = ["web-form", "facebook", "aged-list", "referral"]
    policies = ["medicare_advantage", "medigap", "final_expense", "aca"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            state = states[i]
            zips = zips_by_state[state]
            phone = f"({str(phones[i])[:3]}) {str(phones[i])[3:6]}-{str(phones[i])[6:]}"
            email = f"lead{i}@example.com"
            if malformed[i]:
                email = "not-an-email" if i % 2 else email
                phone = phone if i % 2 else "555-01"
            writer.writerow([
                f"First{i}", f"Last{i % 5000}", phone, f"+1{mobiles[i]}" if has_mobile[i] else "", email,
                f"{i % 9999} Main St", "Springfield", state, zips[int(zip_pick[i] * len(zips))],
                f"https://forms.example.com/consent/{i}", "2026-10-01T15:30:00Z", sources[i % 4], policies[i % 4],
            ])
    return phones


async def load_lists(store: DncStore, npas: list[int], phones: np.ndarray) -> None:
    today = datetime.now(UTC).date()
    for npa in npas:
        bitmap = np.packbits(rng.random(10**7, dtype=np.float32) < 0.30)
        await store.redis.set(store.list_key("federal", npa), bitmap.tobytes())
        for state in npa_states()[npa]:
            if state in ("TX", "FL"):
                state_bits = np.packbits(rng.random(10**7, dtype=np.float32) < 0.05)
                await store.redis.set(store.list_key(f"state:{state}", npa), state_bits.tobytes())
    await store.set_list_date("federal", today)
    for state in load_rulebook().state_dnc_lists:
        await store.set_list_date(f"state:{state}", today)
    for name in ("internal", "litigator", "optout"):
        picks = rng.choice(phones, 3000, replace=False)
        pipe = store.redis.pipeline(transaction=False)
        for number in picks.tolist():
            pipe.sadd(store.list_key(name, number // 10**7), str(number % 10**7))
        await pipe.execute()
        await store.set_list_date(name, today)


async def seed_crm(conn: asyncpg.Connection, phones: np.ndarray) -> None:
    taken = rng.choice(phones, len(phones) // 100, replace=False)
    extra = 20_000 - len(taken)
    numbers = np.concatenate([taken, rng.integers(2_012_000_000, 2_019_999_999, max(extra, 0))])
    await conn.copy_records_to_table(
        "leads", columns=["lead_id", "first_name", "phones"],
        records=[(f"crm-{i}", "Existing", [f"+1{n}"]) for i, n in enumerate(numbers.tolist())],
    )


async def bench_scrub(store: DncStore, phones: np.ndarray) -> tuple[float, int]:
    scrubber = BatchScrubber(store, load_rulebook())
    zips = np.full(len(phones), -1, dtype=np.int32)
    states = np.full(len(phones), -1, dtype=np.int8)
    started = time.perf_counter()
    located = batch.locate(phones, zips, states)
    hits = await scrubber.scrub(phones[located.ok], located.states[located.ok])
    seconds = time.perf_counter() - started
    listed = int((hits.federal | hits.any_state() | hits.internal | hits.litigator | hits.optout).sum())
    print(f"scrub alone: {len(phones):,} numbers in {seconds:.2f} s = {len(phones) / seconds:,.0f} numbers/s "
          f"({listed:,} listed; {hits.stats.bitmaps_fetched} bitmaps fetched, {hits.stats.bits_asked:,} bits asked)")
    return seconds, len(phones)


async def bench_decide(store: DncStore, phones: np.ndarray, sample: int) -> float:
    gate = ComplianceGate(store, MemoryAuditSink(), load_rulebook(), redis_budget=5.0)
    policy = CampaignPolicy(campaign_id="bench", dial_mode=DialMode.MANUAL)
    picks = rng.choice(phones, sample, replace=False)
    requests = [ContactRequest(f"+1{n}", lead_id=f"lead-{i}") for i, n in enumerate(picks.tolist())]
    now = datetime.now(UTC)
    await gate.decide(requests[0], policy, now)  # static data loaded
    started = time.perf_counter()
    for request in requests:
        await gate.decide(request, policy, now)
    seconds = time.perf_counter() - started
    rate = sample / seconds
    print(f"baseline: ComplianceGate.decide one at a time: {sample:,} numbers in {seconds:.2f} s = {rate:,.0f} numbers/s")
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--area-codes", type=int, default=60)
    parser.add_argument("--decide-sample", type=int, default=5_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--pg-admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    database = f"dialer_bench_import_{run}"
    admin = await asyncpg.connect(args.pg_admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = args.pg_admin_dsn.rsplit("/", 1)[0] + f"/{database}"
    client = aioredis.from_url(args.redis_url)
    store = DncStore(client, f"bench-import:{run}:")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "leads.csv"
            npas = pick_area_codes(args.area_codes)
            t0 = time.perf_counter()
            phones = write_file(path, args.rows, npas)
            print(f"== {args.rows:,} leads over {len(npas)} area codes: {path.stat().st_size / 1e6:.0f} MB CSV "
                  f"(written in {time.perf_counter() - t0:.1f} s) ==")
            t0 = time.perf_counter()
            await load_lists(store, npas, phones)
            conn = await asyncpg.connect(dsn)
            await migrate(conn)
            await seed_crm(conn, phones)
            print(f"lists and CRM seeded in {time.perf_counter() - t0:.1f} s")

            plan = ImportPlan(new_import_id(), path, parse_mapping(MAPPING), "bench.csv", report=Path(tmp) / "report.csv")
            scrubber = BatchScrubber(store, load_rulebook())
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            cpu_before = (cpu_seconds(), cpu_seconds(backend))
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            outcome = await import_leads(plan, conn, scrubber)
            seconds = time.perf_counter() - started
            cpu = (cpu_seconds() - cpu_before[0], cpu_seconds(backend) - cpu_before[1])
            await conn.close()
            phases = ", ".join(f"{name} {value:.1f}/{outcome.seconds.get(name + '_cpu', 0):.1f}"
                               for name, value in outcome.seconds.items() if not name.endswith("_cpu"))
            print(f"\n== import ==\n{outcome.counts.summary()}")
            print(f"import: {args.rows:,} rows in {seconds:.1f} s = {args.rows / seconds:,.0f} rows/s "
                  f"(target: 1,000,000 rows in < 60 s)\nphases (wall/CPU of the importer, s): {phases}")
            print(f"CPU: importer {cpu[0]:.1f} s, its PostgreSQL backend {cpu[1]:.1f} s; machine load average "
                  f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (2 cores, shared)")

            print("\n== scrub vs the per-decision path ==")
            scrub_seconds, scrubbed = await bench_scrub(store, phones)
            decide_rate = await bench_decide(store, phones, args.decide_sample)
            scrub_rate = scrubbed / scrub_seconds
            print(f"-> scrub is {scrub_rate / decide_rate:,.0f}x the per-decision path (target >= 200,000 numbers/s: "
                  f"{'met' if scrub_rate >= 200_000 else 'missed'})")
            print(f"-> the whole import (read, check, de-duplicate, scrub, write) runs at "
                  f"{args.rows / seconds / decide_rate:,.1f}x the per-decision path's rate")
    finally:
        keys = [key async for key in client.scan_iter(match=f"{store.prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
