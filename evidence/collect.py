"""Reading everything a packet holds from PostgreSQL, in one snapshot, with the chain entries that
cover it and a checkpoint signed in that same snapshot.

One REPEATABLE READ transaction: the rows, their chain entries and the checkpoint's heads are
all as of one instant, so every row's last entry is in the packet and every entry reaches the
checkpoint (an applier that commits meanwhile is simply not in this packet).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import asyncpg

from crm_bridge.audit_chain import CHAINS, ChainSpec, Entry, Link, json_value
from crm_bridge.audit_keys import AuditSigningKey
from crm_bridge.audit_log import checkpoint_by_id, entries_for_keys, entry_run, sign_checkpoint
from evidence.model import EvidenceData, Segment, SubjectNotFound
from evidence.subject import Subject

# jsonb columns (asyncpg hands them over as text) of the tables a packet reads: every chain's
# own (taken from the chains, so a column added to a chain is parsed here too and the packet's
# row compares equal to its audit entry) and those of the context tables.
_JSON_COLUMNS = frozenset({"amd_settings", "details"}).union(*(spec.json_columns for spec in CHAINS.values()))


def _row(record: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in dict(record).items():
        if name in _JSON_COLUMNS and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        values[name] = json_value(value)
    return values


async def _rows(conn: asyncpg.Connection, query: str, *args: Any) -> list[dict[str, Any]]:
    return [_row(record) for record in await conn.fetch(query, *args)]


_RANGE = "($3::timestamptz IS NULL OR {column} >= $3) AND ($4::timestamptz IS NULL OR {column} < $4)"


async def _subject_rows(conn: asyncpg.Connection, data: EvidenceData) -> None:
    subject = data.subject
    if subject.lead_id is not None:
        data.leads = await _rows(conn, "SELECT * FROM leads WHERE lead_id = $1", subject.lead_id)
        if not data.leads:
            raise SubjectNotFound(f"no lead {subject.lead_id} in the CRM")
        data.phones = list(data.leads[0]["phones"])
    elif subject.phone is not None:
        data.leads = await _rows(conn, "SELECT * FROM leads WHERE phones @> ARRAY[$1::text] ORDER BY lead_id",
                                 subject.phone)
        data.phones = [subject.phone]
    else:
        calls = await _rows(conn, "SELECT * FROM calls WHERE call_id = $1", subject.call_id)
        if not calls:
            raise SubjectNotFound(f"no call {subject.call_id} in the CRM")
        data.calls = calls
        call = calls[0]
        data.phones = [call["lead_number"]] if call["lead_number"] else []
        if call["lead_id"]:
            data.leads = await _rows(conn, "SELECT * FROM leads WHERE lead_id = $1", call["lead_id"])


async def _contact_rows(conn: asyncpg.Connection, data: EvidenceData) -> None:
    subject = data.subject
    lead_ids = [lead["lead_id"] for lead in data.leads]
    phones = data.phones
    window = (subject.start, subject.end)
    if subject.call_id is None:
        data.calls = await _rows(
            conn, "SELECT * FROM calls WHERE (lead_id = ANY($1::text[]) OR lead_number = ANY($2::text[])) AND "
            + _RANGE.format(column="requested_at") + " ORDER BY requested_at, call_id", lead_ids, phones, *window)
    call_ids = [call["call_id"] for call in data.calls]
    await _texts(conn, data, lead_ids, phones)
    if subject.call_id is None and not data.calls and not data.leads and not data.messages:
        found = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM compliance_decisions WHERE phone = ANY($1::text[])) OR "
            "EXISTS (SELECT 1 FROM opt_outs WHERE phone = ANY($1::text[]))", phones)
        if not found:
            raise SubjectNotFound(f"nothing in the CRM about {subject.describe()}")
    linked = [row["compliance_decision_id"] for row in (*data.calls, *(data.messages or []))
              if row.get("compliance_decision_id")]
    if subject.call_id is None:
        data.decisions = await _rows(
            conn, "SELECT * FROM compliance_decisions WHERE ((lead_id = ANY($1::text[]) OR phone = ANY($2::text[])) AND "
            + _RANGE.format(column="decided_at") + ") OR decision_id::text = ANY($5::text[]) "
            "ORDER BY decided_at, decision_id", lead_ids, phones, *window, linked)
        data.dispositions = await _rows(
            conn, "SELECT * FROM dispositions WHERE call_id = ANY($1::text[]) OR (lead_id = ANY($2::text[]) AND "
            + _RANGE.format(column="disposed_at") + ") ORDER BY disposed_at, disposition_id",
            call_ids, lead_ids, *window)
    else:
        data.decisions = await _rows(conn, "SELECT * FROM compliance_decisions WHERE decision_id::text = ANY($1::text[])",
                                     linked)
        data.dispositions = await _rows(conn, "SELECT * FROM dispositions WHERE call_id = $1 ORDER BY disposed_at",
                                        subject.call_id)
    # Opt-outs and consents whatever the period: they are the history a contact is judged by.
    data.opt_outs = await _rows(
        conn, "SELECT * FROM opt_outs WHERE phone = ANY($1::text[]) OR lead_id = ANY($2::text[]) "
        "ORDER BY created_at, opt_out_id", phones, lead_ids)
    data.consents = await _rows(
        conn, "SELECT * FROM consent_records WHERE lead_id = ANY($1::text[]) OR phone = ANY($2::text[]) "
        "ORDER BY obtained_at, consent_id", lead_ids, phones)
    data.recordings = await _rows(
        conn, "SELECT * FROM recordings WHERE call_id = ANY($1::text[]) ORDER BY recorded_at, recording_id", call_ids)
    recording_ids = [recording["recording_id"] for recording in data.recordings]
    data.recording_accesses = await _rows(
        conn, "SELECT * FROM recording_accesses WHERE recording_id = ANY($1::text[]) ORDER BY accessed_at, access_id",
        recording_ids)
    if await conn.fetchval("SELECT to_regclass('recording_events') IS NOT NULL"):
        data.recording_events = await _rows(
            conn, "SELECT * FROM recording_events WHERE recording_id = ANY($1::text[]) ORDER BY happened_at, event_id",
            recording_ids)
    data.monitor_sessions = await _rows(
        conn, "SELECT * FROM monitor_sessions WHERE call_id = ANY($1::text[]) ORDER BY requested_at, monitor_id",
        call_ids)
    campaign_ids = sorted({row["campaign_id"] for row in (*data.calls, *data.decisions) if row.get("campaign_id")})
    data.campaigns = {row["campaign_id"]: row for row in await _rows(
        conn, "SELECT * FROM campaigns WHERE campaign_id = ANY($1::text[])", campaign_ids)}
    agent_ids = sorted({row["agent_id"] for row in (*data.calls, *data.dispositions) if row.get("agent_id")})
    data.agents = {row["agent_id"]: row for row in await _rows(
        conn, "SELECT agent_id, name, sip_endpoint, role FROM agents WHERE agent_id = ANY($1::text[])", agent_ids)}


async def _texts(conn: asyncpg.Connection, data: EvidenceData, lead_ids: list[str], phones: list[str]) -> None:
    """The texts to and from the subject, their receipts and the opt-ins (START) that texting
    records, when texting is installed (a `messages` table); a packet about one call has none."""
    if not await conn.fetchval("SELECT to_regclass('messages') IS NOT NULL"):
        data.messages = None
        return
    subject = data.subject
    if subject.call_id is not None:
        data.messages = []
        return
    data.messages = await _rows(
        conn, "SELECT * FROM messages WHERE (lead_id = ANY($1::text[]) OR to_number = ANY($2::text[]) "
        "OR from_number = ANY($2::text[])) AND " + _RANGE.format(column="created_at")
        + " ORDER BY created_at, message_id", lead_ids, phones, subject.start, subject.end)
    ids = [row["message_id"] for row in data.messages]
    providers = [row["provider_message_id"] for row in data.messages if row.get("provider_message_id")]
    data.message_receipts = await _rows(
        conn, "SELECT * FROM message_receipts WHERE message_id = ANY($1::text[]) OR provider_message_id = "
        "ANY($2::text[]) ORDER BY received_at, receipt_id", ids, providers)
    data.opt_ins = await _rows(
        conn, "SELECT * FROM opt_ins WHERE phone = ANY($1::text[]) OR lead_id = ANY($2::text[]) "
        "ORDER BY created_at, opt_in_id", phones, lead_ids)


async def _chain_rows(conn: asyncpg.Connection, data: EvidenceData) -> None:
    """Every entry of the packet's rows, and the runs linking them to signed checkpoints."""
    for chain, rows in data.chained_rows().items():
        spec = CHAINS[chain]
        keys = {str(row[spec.key]) for row in rows}
        entries = await entries_for_keys(conn, chain, keys)
        data.entries += entries
        data.segments += await _segments(conn, spec, entries)
    wanted = sorted({segment.checkpoint_id for segment in data.segments})
    for checkpoint_id in wanted:
        checkpoint = await checkpoint_by_id(conn, checkpoint_id)
        if checkpoint is not None:
            data.checkpoints.append(checkpoint)


async def _segments(conn: asyncpg.Connection, spec: ChainSpec, entries: Collection[Entry]) -> list[Segment]:
    covered = {entry.seq: entry for entry in entries}
    segments: list[Segment] = []
    pending = sorted(covered)
    while pending:
        first = pending[0]
        target = await conn.fetchrow(
            "SELECT checkpoint_id, seq FROM audit_checkpoint_heads WHERE chain = $1 AND seq >= $2 "
            "ORDER BY seq, checkpoint_id LIMIT 1", spec.name, first)
        if target is None:
            break  # cannot happen after the packet's own checkpoint; left unlinked, `verify` says so
        last = int(target["seq"])
        run = await entry_run(conn, spec.name, first, last)
        items: list[Entry | Link] = [entry if entry.seq in covered else Link(entry.seq, entry.body_hash)
                                     for entry in run]
        segments.append(Segment(spec.name, first, run[0].prev_hash if run else "", tuple(items),
                                int(target["checkpoint_id"])))
        pending = [seq for seq in pending if seq > last]
    return segments


async def collect(conn: asyncpg.Connection, subject: Subject, key: AuditSigningKey) -> EvidenceData:
    """Everything about `subject`, its chain entries, and a checkpoint signed in the same snapshot.
    Raises `SubjectNotFound` when the CRM knows nothing about it."""
    data = EvidenceData(subject)
    async with conn.transaction(isolation="repeatable_read"):
        data.collected_at = json_value(await conn.fetchval("SELECT clock_timestamp()"))
        data.trail_started_at = json_value(await conn.fetchval("SELECT started_at FROM audit_trail"))
        await _subject_rows(conn, data)
        await _contact_rows(conn, data)
        data.checkpoint = await sign_checkpoint(conn, key)
        await _chain_rows(conn, data)
    return data
