"""Applying validated outbox records to the CRM tables (the PostgreSQL side of the outbox).

Every apply is written to be safe to repeat: inserts of audit rows do nothing when the id
exists, call snapshots only replace older versions, upserts converge. Exactly-once on top of
that comes from `outbox_applied` (see `crm_bridge.outbox`).

Every row of an audited table that an apply writes is then appended to its hash chain in the
same transaction (`crm_bridge.audit_log.append_row`, which skips a write that changed nothing):
the chain's order is the order in which rows reached PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, time
from typing import Any

import asyncpg

from crm_bridge.audit_chain import CALL_CHAIN, CHAIN_OF_KIND, CONSENT_CHAIN, MESSAGE_CHAIN
from crm_bridge.audit_log import ChainHeads, append_inserted, append_row, lock_chains
from crm_bridge.dispositions import DispositionCode, PipelineStage, decide
from crm_bridge.kinds import RecordKind
from crm_bridge.records import (
    CONSENT_FIELDS,
    FIELDS,
    FINAL_DELIVERY_STATUSES,
    KEY_FIELD,
    FieldSpec,
    MessageDirection,
    SqlType,
)
from crm_bridge.webhooks import emit_for_record, stage_changed_by_text

TABLES: dict[RecordKind, str] = {
    RecordKind.CALL: "calls",
    RecordKind.DISPOSITION: "dispositions",
    RecordKind.OPT_OUT: "opt_outs",
    RecordKind.COMPLIANCE_DECISION: "compliance_decisions",
    RecordKind.RECORDING: "recordings",
    RecordKind.LEAD_UPSERT: "leads",
    RecordKind.AGENT_UPSERT: "agents",
    RecordKind.CAMPAIGN_UPSERT: "campaigns",
    RecordKind.CAMPAIGN_LEAD: "campaign_leads",
    RecordKind.MONITOR_SESSION: "monitor_sessions",
    RecordKind.RECORDING_ACCESS: "recording_accesses",
    RecordKind.MESSAGE: "messages",
    RecordKind.MESSAGE_RECEIPT: "message_receipts",
    RecordKind.MESSAGE_TEMPLATE: "message_templates",
    RecordKind.OPT_IN: "opt_ins",
    RecordKind.EVIDENCE_PACKET: "evidence_packets",
    RecordKind.AGENT_STATE: "agent_state_changes",
    RecordKind.CAMPAIGN_CHANGE: "campaign_changes",
    RecordKind.CAMPAIGN_SETTINGS: "campaigns",
}

# Links to audit rows a later call snapshot may omit but must never clear.
_LINKS: frozenset[str] = frozenset({"recording_id", "compliance_decision_id"})

# Fields of a record that are not columns of its table.
_NOT_COLUMNS: frozenset[str] = frozenset({"consents"})


def _to_sql(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.sql is SqlType.TIMESTAMP:
        return datetime.fromisoformat(value)
    if spec.sql is SqlType.TIME:
        return time.fromisoformat(value)
    if spec.sql is SqlType.JSONB:
        return json.dumps(value)
    return value


def _columns(specs: Mapping[str, FieldSpec], record: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    names = [name for name in record if name not in _NOT_COLUMNS]
    return names, [_to_sql(specs[name], record[name]) for name in names]


def _insert(table: str, names: Sequence[str]) -> str:
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})"


def _set_from_excluded(names: Sequence[str], key: str, *, keep: frozenset[str] = frozenset()) -> str:
    return ", ".join(f"{name} = EXCLUDED.{name}" for name in names if name != key and name not in keep)


# Audit rows are immutable: the first write wins, and what it wrote is chained as inserted.
_IMMUTABLE: frozenset[RecordKind] = frozenset({
    RecordKind.OPT_OUT, RecordKind.COMPLIANCE_DECISION, RecordKind.RECORDING_ACCESS, RecordKind.OPT_IN,
    RecordKind.EVIDENCE_PACKET, RecordKind.AGENT_STATE, RecordKind.CAMPAIGN_CHANGE})


async def apply_record(
    conn: asyncpg.Connection, kind: RecordKind, record: Mapping[str, Any], *, origin: str | None = None,
    heads: ChainHeads | None = None,
) -> None:
    """Write one normalized record (from `records.validate`) inside the caller's transaction, and
    append what it wrote to the audit chains. `origin` names the outbox record (`source:id`);
    `heads`: the caller holds the chains' lock and caches their heads (see `ChainHeads`)."""
    if heads is None:
        await lock_chains(conn)  # before any row lock (crm_bridge.audit_log)
        heads = ChainHeads()
    chain = CHAIN_OF_KIND.get(kind)
    if kind in _IMMUTABLE and chain is not None:
        names, values = _columns(FIELDS[kind], record)
        inserted = await conn.fetchrow(
            f"{_insert(TABLES[kind], names)} ON CONFLICT ({KEY_FIELD[kind]}) DO NOTHING "
            f"RETURNING {chain.select_columns}", *values)
        if inserted is not None:
            await append_inserted(conn, chain, dict(inserted), origin=origin, heads=heads)
            await emit_for_record(conn, kind, record)
        return
    await _write_record(conn, kind, record)
    if chain is not None:
        await append_row(conn, chain, str(record[KEY_FIELD[kind]]), origin=origin, heads=heads)
    if kind is RecordKind.RECORDING and record["call_id"] is not None:
        # Linking the recording changed the call's row: that is a new state of the call.
        await append_row(conn, CALL_CHAIN, record["call_id"], origin=origin, heads=heads)
    if kind is RecordKind.LEAD_UPSERT:
        for consent in record.get("consents", ()):
            await append_row(conn, CONSENT_CHAIN, consent["consent_id"], origin=origin, heads=heads)
    if kind is RecordKind.MESSAGE_RECEIPT:
        # The receipt's status was copied onto its text: a new state of the text.
        for message_id in await conn.fetch(
            "SELECT message_id FROM messages WHERE provider_message_id = $1", record["provider_message_id"]
        ):
            await append_row(conn, MESSAGE_CHAIN, message_id["message_id"], origin=origin, heads=heads)
    # Webhook events in the same transaction as their rows (crm_bridge.webhooks).
    await emit_for_record(conn, kind, record)


async def _write_record(conn: asyncpg.Connection, kind: RecordKind, record: Mapping[str, Any]) -> None:
    specs = FIELDS[kind]
    table = TABLES[kind]
    key = KEY_FIELD[kind]
    names, values = _columns(specs, record)
    if kind is RecordKind.CALL:
        # A snapshot replaces the row only when newer: events can be written out of order across
        # retries, and an old snapshot must never undo a later one.
        await conn.execute(
            f"{_insert(table, names)} ON CONFLICT (call_id) DO UPDATE SET "
            f"{_set_from_excluded(names, key, keep=_LINKS)}, "
            "recording_id = COALESCE(EXCLUDED.recording_id, calls.recording_id), "
            "compliance_decision_id = COALESCE(EXCLUDED.compliance_decision_id, calls.compliance_decision_id), "
            "updated_at = now() "
            "WHERE calls.version < EXCLUDED.version",
            *values,
        )
        # A recording row may have arrived before the call row: link it.
        await conn.execute(
            "UPDATE calls SET recording_id = r.recording_id FROM recordings r "
            "WHERE calls.call_id = $1 AND calls.recording_id IS NULL AND r.call_id = $1",
            record["call_id"],
        )
    elif kind is RecordKind.MONITOR_SESSION:
        # Like call snapshots: only a newer version replaces the row.
        await conn.execute(
            f"{_insert(table, names)} ON CONFLICT ({key}) DO UPDATE SET {_set_from_excluded(names, key)}, "
            "updated_at = now() WHERE monitor_sessions.version < EXCLUDED.version",
            *values,
        )
    elif kind is RecordKind.AGENT_STATE:
        await _apply_agent_state(conn, names, values, record)
    elif kind is RecordKind.CAMPAIGN_SETTINGS:
        # Only the settings given, on the campaign as it is now: an admin's edit of its other
        # columns between the control's read and this apply stays (a replay writes the same).
        settings = [(name, value) for name, value in zip(names, values, strict=True) if name != key]
        if settings:
            assignments = ", ".join(f"{name} = ${index}" for index, (name, _) in enumerate(settings, start=2))
            await conn.execute(f"UPDATE campaigns SET {assignments}, updated_at = now() WHERE campaign_id = $1",
                               record[key], *(value for _, value in settings))
    elif kind is RecordKind.MESSAGE:
        await _apply_message(conn, names, values, record)
    elif kind is RecordKind.MESSAGE_RECEIPT:
        await _apply_receipt(conn, names, values, record)
    elif kind in _IMMUTABLE:
        await conn.execute(f"{_insert(table, names)} ON CONFLICT ({key}) DO NOTHING", *values)
    elif kind is RecordKind.DISPOSITION:
        await _apply_disposition(conn, names, values, record)
    elif kind is RecordKind.RECORDING:
        await conn.execute(
            f"{_insert(table, names)} ON CONFLICT ({key}) DO UPDATE SET {_set_from_excluded(names, key)}",
            *values,
        )
        if record["call_id"] is not None:
            await conn.execute(
                "UPDATE calls SET recording_id = $1 WHERE call_id = $2 AND recording_id IS NULL",
                record["recording_id"],
                record["call_id"],
            )
    else:
        updates = _set_from_excluded(names, key)
        conflict = f"DO UPDATE SET {updates}, updated_at = now()" if updates else "DO UPDATE SET updated_at = now()"
        await conn.execute(f"{_insert(table, names)} ON CONFLICT ({key}) {conflict}", *values)
        if kind is RecordKind.LEAD_UPSERT:
            for consent in record.get("consents", ()):
                consent_names, consent_values = _columns(CONSENT_FIELDS, consent)
                await conn.execute(
                    f"{_insert('consent_records', ['lead_id', *consent_names])} ON CONFLICT (consent_id) "
                    f"DO UPDATE SET {_set_from_excluded(consent_names, 'consent_id')}",
                    record["lead_id"],
                    *consent_values,
                )


_FINAL = sorted(status.value for status in FINAL_DELIVERY_STATUSES)


async def _apply_message(
    conn: asyncpg.Connection, names: Sequence[str], values: Sequence[Any], record: Mapping[str, Any]
) -> None:
    # Like call snapshots: only a newer version replaces the row. Receipts own delivery_*.
    await conn.execute(
        f"{_insert('messages', names)} ON CONFLICT (message_id) DO UPDATE SET "
        f"{_set_from_excluded(names, 'message_id')}, updated_at = now() WHERE messages.version < EXCLUDED.version",
        *values,
    )
    if record["provider_message_id"] is not None:
        # A receipt may have arrived before the snapshot that names the provider's id.
        await conn.execute(
            "UPDATE messages m SET delivery_status = r.status, delivery_error = r.error, "
            "delivered_at = CASE WHEN r.status = 'delivered' THEN r.received_at END "
            "FROM (SELECT status, error, received_at FROM message_receipts WHERE provider_message_id = $2 "
            "      ORDER BY (status = ANY($3::text[])) DESC, received_at DESC LIMIT 1) r "
            "WHERE m.message_id = $1 AND m.delivery_status IS NULL",
            record["message_id"], record["provider_message_id"], _FINAL,
        )
    if record["direction"] == MessageDirection.INBOUND.value and record["lead_id"] is not None:
        # The lead wrote to us: first contact moves a new lead on, as a call's contact does, and
        # tells the CRM (only the text that moved it: a new lead moves once).
        moved = await conn.fetchval(
            "UPDATE leads SET pipeline_stage = $2, updated_at = now() WHERE lead_id = $1 AND pipeline_stage = $3 "
            "RETURNING true",
            record["lead_id"], PipelineStage.CONTACTED.value, PipelineStage.NEW_LEAD.value,
        )
        if moved:
            created = record.get("created_at")
            await stage_changed_by_text(conn, record["lead_id"], record["message_id"], PipelineStage.NEW_LEAD.value,
                                        PipelineStage.CONTACTED.value,
                                        datetime.fromisoformat(created) if isinstance(created, str) else created)


async def _apply_receipt(
    conn: asyncpg.Connection, names: Sequence[str], values: Sequence[Any], record: Mapping[str, Any]
) -> None:
    inserted = await conn.fetchval(
        f"{_insert('message_receipts', names)} ON CONFLICT (receipt_id) DO NOTHING RETURNING true", *values
    )
    if not inserted:
        return
    # A final status (delivered, undelivered, failed) is never replaced by an intermediate one.
    received_at = datetime.fromisoformat(record["received_at"])
    await conn.execute(
        "UPDATE messages SET delivery_status = $2, delivery_error = $3, "
        "delivered_at = CASE WHEN $2 = 'delivered' THEN $4::timestamptz ELSE delivered_at END, updated_at = now() "
        "WHERE provider_message_id = $1 AND direction = 'outbound' "
        "AND (delivery_status IS NULL OR NOT (delivery_status = ANY($5::text[])) OR $2 = ANY($5::text[]))",
        record["provider_message_id"], record["status"], record["error"], received_at, _FINAL,
    )


async def _apply_agent_state(
    conn: asyncpg.Connection, names: Sequence[str], values: Sequence[Any], record: Mapping[str, Any]
) -> None:
    """A state change ends the session's previous state (and is itself ended by a later one that
    arrived first), so a report sums intervals without ordering every row."""
    inserted = await conn.fetchval(
        f"{_insert('agent_state_changes', names)} ON CONFLICT (change_id) DO NOTHING RETURNING true", *values)
    if not inserted:
        return
    session, version, since = record["session_id"], record["version"], datetime.fromisoformat(record["since"])
    await conn.execute(
        "UPDATE agent_state_changes SET ended_at = $3 WHERE session_id = $1 AND version = ("
        "SELECT max(version) FROM agent_state_changes WHERE session_id = $1 AND version < $2)",
        session, version, since)
    await conn.execute(
        "UPDATE agent_state_changes SET ended_at = (SELECT since FROM agent_state_changes WHERE session_id = $1 "
        "AND version > $2 ORDER BY version LIMIT 1) WHERE change_id = $3",
        session, version, record["change_id"])


async def _apply_disposition(
    conn: asyncpg.Connection, names: Sequence[str], values: Sequence[Any], record: Mapping[str, Any]
) -> None:
    inserted = await conn.fetchval(
        f"{_insert('dispositions', names)} ON CONFLICT (disposition_id) DO NOTHING RETURNING true", *values
    )
    if not inserted or record["lead_id"] is None:
        return
    # The stage rule needs the lead's stage as it is now, so it is decided here, under a row lock.
    current = await conn.fetchval(
        "SELECT pipeline_stage FROM leads WHERE lead_id = $1 FOR UPDATE", record["lead_id"]
    )
    if current is None:
        return  # lead not (yet) in the CRM: the disposition is kept, the pipeline cannot move
    callback_at = datetime.fromisoformat(record["callback_at"]) if record["callback_at"] else None
    outcome = decide(PipelineStage(current), DispositionCode(record["code"]), callback_at)
    await conn.execute(
        "UPDATE leads SET pipeline_stage = $2, callback_at = COALESCE($3, callback_at), "
        "needs_review = needs_review OR $4, review_reason = COALESCE($5, review_reason), updated_at = now() "
        "WHERE lead_id = $1",
        record["lead_id"],
        outcome.stage_after.value,
        outcome.callback_at,
        outcome.review_reason is not None,
        outcome.review_reason,
    )
    await conn.execute(
        "UPDATE dispositions SET stage_before = $2, stage_after = $3 WHERE disposition_id = $1",
        record["disposition_id"],
        outcome.stage_before.value,
        outcome.stage_after.value,
    )
