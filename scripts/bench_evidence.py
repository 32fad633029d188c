"""Benchmark: how long an evidence packet takes for a lead with 50 contacts.

    nice -n 10 .venv/bin/python scripts/bench_evidence.py [--contacts 50] [--noise 5000] [--seconds 60] [--runs 3]

A scratch PostgreSQL database (`dialer_bench_evidence_*`, dropped at the end) is filled through
the outbox, as the dialer fills it: one lead with written consent, `--contacts` calls, each with
its allowed gate decision, a sealed recording of `--seconds` of 8 kHz audio, a disposition and a
recording hand-out; the last call ends in a do-not-call opt-out and one blocked attempt. Around
them, `--noise` records of other people interleave in every chain, with a checkpoint signed every
500 of them, so the packet carries real runs of redacted links.

Printed, each the median of `--runs`, next to baselines measured in the same run:
- the whole packet (snapshot + checkpoint, audio opened, findings, HTML, PDF, ZIP, signature);
- its parts: reading the snapshot, opening the audio, rendering the PDF;
- the same for a lead with 1 contact (the fixed cost), and reading the lead's calls the way
  `GET /v1/calls?lead_id=` does (the cheapest useful answer about the lead).
Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import io
import statistics
import tempfile
import time
import uuid
import wave
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from crm_bridge import migrate
from crm_bridge.audit_keys import AuditSigningKey
from crm_bridge.audit_log import sign_checkpoint
from crm_bridge.outbox import Outbox
from crm_bridge.store import CrmStore
from evidence import collect as collect_module
from evidence import packet as packet_module
from evidence import report as report_module
from evidence.findings import findings
from evidence.model import EvidenceData
from evidence.recordings import recording_audio
from evidence.service import EvidenceService, Requester
from evidence.subject import subject_from
from recordings.crypto import Keyring, seal
from recordings.reader import RecordingReader

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)


def _wav(seconds: float) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(range(256)) * int(8000 * seconds * 2 / 256))
    return out.getvalue()


def _lead_records(lead_id: str, phone: str, contacts: int, archive: Path, keyring: Keyring,
                  audio: bytes) -> list[tuple[str, dict[str, Any]]]:
    items: list[tuple[str, dict[str, Any]]] = [
        ("lead_upsert", {"lead_id": lead_id, "first_name": "Pat", "last_name": "Doe", "phones": [phone], "state": "NY",
                         "zip": "10001", "consents": [{"consent_id": f"{lead_id}-pewc", "kind": "pewc", "phone": phone,
                                                       "obtained_at": T0 - timedelta(days=3), "source": "web_form",
                                                       "evidence_ref": "form 8841"}]})]
    digest = hashlib.sha256(audio).hexdigest()
    for index in range(contacts):
        at = T0 + timedelta(days=index // 3, hours=index % 3)
        decision_id = str(uuid.uuid4())
        call_id = f"call-{lead_id}-{index}"
        recording_id = f"rec-{call_id}"
        path = archive / f"{recording_id}.wav.sealed"
        path.write_bytes(seal(audio, keyring.current, recording_id))
        items += [
            ("compliance_decision", {"decision_id": decision_id, "decided_at": at, "phone": phone, "lead_id": lead_id,
                                     "campaign_id": "camp-bench", "purpose": "telemarketing", "allowed": True,
                                     "reasons": [], "timezones": ["America/New_York"],
                                     "local_times": [at.isoformat()],
                                     "data_versions": {"federal_dnc": "2026-05-20", "rules": "2026-05-01 sha256:abc"}}),
            ("call", {"call_id": call_id, "version": 9, "direction": "outbound", "lead_id": lead_id,
                      "agent_id": "agent-bench", "campaign_id": "camp-bench", "lead_number": phone,
                      "caller_id": "+18885550123", "requested_at": at, "lead_answered_at": at + timedelta(seconds=6),
                      "greeting_ended_at": at + timedelta(seconds=7), "bridged_at": at + timedelta(seconds=7.6),
                      "ended_at": at + timedelta(seconds=70), "outcome": "answered", "amd_result": "HUMAN",
                      "compliance_decision_id": decision_id}),
            ("recording", {"recording_id": recording_id, "call_id": call_id, "lead_id": lead_id,
                           "storage_uri": path.as_uri(), "format": "wav", "sha256": digest, "size_bytes": len(audio),
                           "duration_seconds": len(audio) / 16000, "recorded_at": at}),
            ("disposition", {"disposition_id": f"disp-{call_id}", "call_id": call_id, "lead_id": lead_id,
                             "agent_id": "agent-bench", "code": "no_answer" if index < contacts - 1 else "do_not_call",
                             "disposed_at": at + timedelta(seconds=80)}),
            ("recording_access", {"access_id": str(uuid.uuid4()), "recording_id": recording_id, "call_id": call_id,
                                  "role": "supervisor", "channel": "http", "accessed_at": at + timedelta(hours=1)}),
        ]
    last = T0 + timedelta(days=contacts // 3 + 1)
    items += [("opt_out", {"opt_out_id": f"optout-{lead_id}", "phone": phone, "source": "agent_disposition",
                           "lead_id": lead_id, "created_at": last}),
              ("compliance_decision", {"decision_id": str(uuid.uuid4()), "decided_at": last + timedelta(hours=1),
                                       "phone": phone, "lead_id": lead_id, "campaign_id": "camp-bench",
                                       "purpose": "telemarketing", "allowed": False,
                                       "reasons": [{"code": "opted_out", "message": "opted out",
                                                    "citation": "47 CFR 64.1200(d)(3)"}]})]
    return items


def _noise(count: int) -> list[tuple[str, dict[str, Any]]]:
    items: list[tuple[str, dict[str, Any]]] = []
    for index in range(count):
        phone = f"+1404555{index % 10000:04d}"
        at = T0 + timedelta(minutes=index)
        kind = index % 3
        if kind == 0:
            items.append(("compliance_decision", {"decision_id": str(uuid.uuid4()), "decided_at": at, "phone": phone,
                                                  "purpose": "telemarketing", "allowed": True}))
        elif kind == 1:
            items.append(("call", {"call_id": f"noise-{index}", "version": 1, "direction": "outbound",
                                   "lead_number": phone, "requested_at": at}))
        else:
            items.append(("opt_out", {"opt_out_id": f"noise-{index}", "phone": phone, "source": "api",
                                      "created_at": at}))
    return items


async def _fill(dsn: str, state: Path, archive: Path, keyring: Keyring, key: AuditSigningKey, contacts: int,
                noise: int, seconds: float) -> None:
    audio = _wav(seconds)
    lead = _lead_records("lead-bench", "+12125550142", contacts, archive, keyring, audio)
    small = _lead_records("lead-one", "+12125550143", 1, archive, keyring, audio)
    other = _noise(noise)
    # The lead's records spread through the noise, a checkpoint every 500 records.
    stride = max(1, len(other) // max(1, len(lead)))
    merged: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(lead):
        merged += [item, *other[index * stride:(index + 1) * stride]]
    merged += other[len(lead) * stride:] + small
    conn = await asyncpg.connect(dsn)
    try:
        async with Outbox(state, dsn, batch_size=200) as outbox:
            for start in range(0, len(merged), 500):
                await outbox.put_many(merged[start:start + 500])
                assert await outbox.flush(120)
                await sign_checkpoint(conn, key)
    finally:
        await conn.close()


async def _median(runs: int, step: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def run(args: argparse.Namespace) -> None:
    name = f"dialer_bench_evidence_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = args.admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-evidence-") as folder:
            work = Path(folder)
            archive = work / "archive"
            archive.mkdir()
            conn = await asyncpg.connect(dsn)
            await migrate.migrate(conn)
            await conn.close()
            keyring = Keyring.load_or_create(work / "recording-keys")
            key = AuditSigningKey.load_or_create(work / "audit-keys", chain_signed=False)
            started = time.perf_counter()
            await _fill(dsn, work / "state", archive, keyring, key, args.contacts, args.noise, args.seconds)
            print(f"filled {args.contacts} contacts + {args.noise} other records through the outbox in "
                  f"{time.perf_counter() - started:.1f} s")
            reader = RecordingReader(archive, keyring)
            service = EvidenceService(dsn, key, functools.partial(recording_audio, reader))
            who = Requester("bench", "admin", "cli")
            big, one = subject_from(lead_id="lead-bench"), subject_from(lead_id="lead-one")
            out = work / "packet.zip"

            whole = await _median(args.runs, lambda: service.build(big, out, who))
            size = out.stat().st_size
            fixed = await _median(args.runs, lambda: service.build(one, work / "one.zip", who))

            async def snapshot() -> object:
                conn = await asyncpg.connect(dsn)
                try:
                    return await collect_module.collect(conn, big, key)
                finally:
                    await conn.close()

            read = await _median(args.runs, snapshot)
            data = await snapshot()
            assert isinstance(data, EvidenceData)

            async def audio() -> object:
                return [recording_audio(reader, row) for row in data.recordings]

            opened = await _median(args.runs, audio)
            html = report_module.render_html(findings(data), {"packet_id": "bench"})

            async def pdf() -> object:
                return report_module.render_pdf(html)

            rendered = await _median(args.runs, pdf)
            store = await CrmStore.open(dsn)
            try:
                baseline = await _median(args.runs * 5, lambda: store.list_calls(lead_id="lead-bench", limit=1000))
            finally:
                await store.close()
            segments = sum(len(segment.items) for segment in data.segments)
            print(f"packet: {len(data.calls)} contacts, {len(data.recordings)} recordings of {args.seconds:.0f} s, "
                  f"{len(data.entries)} chain entries + {segments - len(data.entries)} redacted links, "
                  f"{len(data.checkpoints)} checkpoints; {size / 1e6:.1f} MB; "
                  f"format {packet_module.PACKET_FORMAT}")
            print(f"whole packet, 50-contact lead : {whole:8.3f} s  (median of {args.runs})")
            print(f"  snapshot + checkpoint read  : {read:8.3f} s  ({read / whole:5.1%} of it)")
            print(f"  audio opened and checked    : {opened:8.3f} s  ({opened / whole:5.1%})")
            print(f"  PDF rendered (WeasyPrint)   : {rendered:8.3f} s  ({rendered / whole:5.1%})")
            print(f"whole packet, 1-contact lead  : {fixed:8.3f} s  (50 contacts cost {whole / fixed:.1f}x that)")
            print(f"baseline GET /v1/calls reads  : {baseline * 1000:8.1f} ms (the packet is {whole / baseline:.0f}x that)")
    finally:
        admin = await asyncpg.connect(args.admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=50)
    parser.add_argument("--noise", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each recording")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--admin-dsn", default=ADMIN_DSN)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
