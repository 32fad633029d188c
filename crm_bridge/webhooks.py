"""Outbound webhooks: the events, their signatures, and their durable queue (docs/webhooks.md).

**Events are written where the rows are.** `emit_for_record` runs inside the outbox's apply
transaction that writes a call, a disposition, a recording, an opt-out or a text, so an event
exists exactly when its row does: nothing is lost when PostgreSQL or the receiver is down, and a
record applied twice makes no second event (each event id is derived from its row). Each event is
fanned out, in the same transaction, to a `webhook_deliveries` row per subscription that wants it.

**Signatures follow Standard Webhooks** (standardwebhooks.com): headers `webhook-id`,
`webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated list of
`v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`, where the key is the secret's bytes
(the base64 after `whsec_`). During a rotation both the new and the previous secret sign.

**The queue** is claimed with `FOR UPDATE SKIP LOCKED` and a lease, so several dispatchers (one per
controller) never send one delivery at once; a delivery waits while an earlier event of the same
subject (a call) is pending for the same subscription, so each call's events arrive in order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from crm_bridge.audit_chain import json_value
from crm_bridge.kinds import RecordKind


class EventType(StrEnum):
    CALL_ENDED = "call.ended"
    DISPOSITION_CREATED = "disposition.created"
    RECORDING_READY = "recording.ready"
    LEAD_OPTED_OUT = "lead.opted_out"
    LEAD_STAGE_CHANGED = "lead.stage_changed"
    MESSAGE_RECEIVED = "message.received"
    # An outbound text's outcomes: one type each, so a CRM switches on the type and subscribes
    # to the ones it acts on (docs/webhooks.md says why not one `message.status_changed`).
    MESSAGE_SENT = "message.sent"
    MESSAGE_DELIVERED = "message.delivered"
    MESSAGE_FAILED = "message.failed"
    MESSAGE_BLOCKED = "message.blocked"
    MESSAGE_EXPIRED = "message.expired"
    MESSAGE_CANCELED = "message.canceled"


# A connection, or one borrowed from a pool.
Connection: TypeAlias = "asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"
SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


# ---- signatures (pure) -----------------------------------------------------------------------
def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` with the secret's key."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(signature(secret, message_id, timestamp, body) for secret in secrets_)


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Whether a delivery is authentic (the check docs/webhooks.md gives a receiver)."""
    message_id = headers.get("webhook-id", "")
    try:
        timestamp = int(headers.get("webhook-timestamp", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, message_id, timestamp, body).split(",", 1)[1]
    return any(hmac.compare_digest(expected, given.split(",", 1)[1])
               for given in headers.get("webhook-signature", "").split() if given.startswith("v1,"))


# ---- events, written where the rows are ------------------------------------------------------
def recording_path(recording_id: str) -> str:
    return f"/v1/recordings/{recording_id}/audio"


async def _emit(conn: asyncpg.Connection, event_id: str, event_type: EventType, subject: str,
                occurred_at: datetime | None, payload: Mapping[str, Any]) -> None:
    row = await conn.fetchrow(
        "INSERT INTO webhook_events (event_id, event_type, subject, occurred_at, payload) "
        "VALUES ($1, $2, $3, COALESCE($4, now()), $5) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
        event_id, event_type.value, subject, occurred_at, json.dumps(json_value(_plain(payload))))
    if row is None:
        return  # the same row applied again: its event exists already
    await conn.execute(
        "INSERT INTO webhook_deliveries (subscription_id, event_id, event_seq, subject) "
        "SELECT subscription_id, $1, $2, $3 FROM webhook_subscriptions WHERE active AND $4 = ANY(event_types)",
        event_id, row["seq"], subject, event_type.value)


def _plain(value: Any) -> Any:
    """Numbers PostgreSQL gives as Decimal as JSON numbers (the audit's `json_value` keeps them as
    strings, exactly; a receiver wants numbers)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


_CALL_FIELDS = ("call_id", "direction", "lead_id", "agent_id", "campaign_id", "lead_number", "caller_id",
                "requested_at", "lead_answered_at", "bridged_at", "ended_at", "outcome", "ring_seconds",
                "talk_seconds", "total_seconds", "recording_id", "amd_result", "safe_harbor_played", "abandoned")


async def emit_for_record(conn: asyncpg.Connection, kind: RecordKind, record: Mapping[str, Any]) -> None:
    """The events a record just applied makes (inside the apply's transaction)."""
    if kind is RecordKind.CALL:
        await _call_ended(conn, record["call_id"])
    elif kind is RecordKind.DISPOSITION:
        await _disposition(conn, record["disposition_id"])
    elif kind is RecordKind.RECORDING:
        await _recording(conn, record["recording_id"])
    elif kind is RecordKind.OPT_OUT:
        subject = record.get("call_id") or record["phone"]
        await _emit(conn, f"evt_opted_out_{record['opt_out_id']}", EventType.LEAD_OPTED_OUT, subject,
                    None, {key: record.get(key) for key in ("phone", "source", "lead_id", "call_id")})
    elif kind is RecordKind.MESSAGE and record.get("direction") == "inbound":
        await _emit(conn, f"evt_message_{record['message_id']}", EventType.MESSAGE_RECEIVED,
                    record.get("lead_id") or record["from_number"], None,
                    {key: record.get(key) for key in ("message_id", "lead_id", "campaign_id", "from_number",
                                                      "to_number", "body", "kind", "created_at")})
    elif kind is RecordKind.MESSAGE:
        await _message_outcome(conn, record["message_id"])
    elif kind is RecordKind.MESSAGE_RECEIPT:
        for row in await conn.fetch(
                "SELECT message_id FROM messages WHERE provider_message_id = $1 AND direction = 'outbound'",
                record["provider_message_id"]):
            await _message_outcome(conn, row["message_id"])


async def stage_changed_by_text(conn: asyncpg.Connection, lead_id: str, message_id: str, before: str, after: str,
                                at: datetime | None) -> None:
    """`lead.stage_changed` for a lead moved by its own text (a new lead that writes first is
    contacted); one event per message, whatever the times the message's record is applied."""
    await _emit(conn, f"evt_stage_text_{message_id}", EventType.LEAD_STAGE_CHANGED, lead_id, at,
                {"lead_id": lead_id, "message_id": message_id, "call_id": None, "disposition_id": None,
                 "stage_before": before, "stage_after": after})


_MESSAGE_FIELDS = ("message_id", "kind", "lead_id", "agent_id", "campaign_id", "from_number", "to_number", "body",
                   "encoding", "segments", "template_id", "transport", "provider_message_id", "status",
                   "status_detail", "delivery_status", "delivery_error", "delivered_at", "compliance_decision_id",
                   "requested_by", "created_at", "sent_at", "updated_at")
# The dialer's final states of an outbound text, each its own event.
_OUTCOME_EVENTS = {"sent": EventType.MESSAGE_SENT, "failed": EventType.MESSAGE_FAILED,
                   "blocked": EventType.MESSAGE_BLOCKED, "expired": EventType.MESSAGE_EXPIRED,
                   "canceled": EventType.MESSAGE_CANCELED}


async def _message_outcome(conn: asyncpg.Connection, message_id: str) -> None:
    """An outbound text's events, from its row as it now stands (a snapshot applied late or twice
    changes nothing): its final state (`message.sent`, `.failed`, `.blocked`, `.expired`,
    `.canceled`), then the carrier's final receipt (`message.delivered`; undelivered or failed:
    `message.failed`). Each event id names the text and the event, so each comes at most once;
    the text's id is the subject, so a text's `sent` reaches a subscriber before its `delivered`."""
    row = await conn.fetchrow(f"SELECT {', '.join(_MESSAGE_FIELDS)} FROM messages WHERE message_id = $1 "
                              "AND direction = 'outbound'", message_id)
    if row is None:
        return
    text = dict(row)
    outcome = _OUTCOME_EVENTS.get(row["status"])
    if outcome is not None:
        at = row["sent_at"] if outcome is EventType.MESSAGE_SENT else row["updated_at"]
        await _emit(conn, f"evt_{outcome.value.replace('.', '_')}_{message_id}", outcome, message_id, at,
                    {**text, "failure": "dialer" if outcome is EventType.MESSAGE_FAILED else None})
    if row["delivery_status"] == "delivered":
        await _emit(conn, f"evt_message_delivered_{message_id}", EventType.MESSAGE_DELIVERED, message_id,
                    row["delivered_at"], {**text, "failure": None})
    elif row["delivery_status"] in ("undelivered", "failed"):
        # The dialer's own `failed` (never handed over) and the carrier's share the type: for a
        # CRM both mean "the lead did not get it"; `failure` tells them apart.
        await _emit(conn, f"evt_message_undelivered_{message_id}", EventType.MESSAGE_FAILED, message_id,
                    row["updated_at"], {**text, "failure": "carrier"})


async def _call_ended(conn: asyncpg.Connection, call_id: str) -> None:
    row = await conn.fetchrow(f"SELECT {', '.join(_CALL_FIELDS)} FROM calls WHERE call_id = $1", call_id)
    if row is None or row["ended_at"] is None or row["outcome"] is None:
        return
    call = dict(row)
    disposition = await conn.fetchrow(
        "SELECT disposition_id, code, notes, callback_at, disposed_at FROM dispositions WHERE call_id = $1 "
        "ORDER BY disposed_at DESC LIMIT 1", call_id)
    call["disposition"] = None if disposition is None else dict(disposition)
    call["recording_url"] = recording_path(row["recording_id"]) if row["recording_id"] else None
    await _emit(conn, f"evt_call_ended_{call_id}", EventType.CALL_ENDED, call_id, row["ended_at"], call)


async def _disposition(conn: asyncpg.Connection, disposition_id: str) -> None:
    row = await conn.fetchrow(
        "SELECT disposition_id, call_id, lead_id, agent_id, campaign_id, code, notes, callback_at, stage_before, "
        "stage_after, disposed_at FROM dispositions WHERE disposition_id = $1", disposition_id)
    if row is None:
        return
    subject = row["call_id"] or row["lead_id"] or disposition_id
    await _emit(conn, f"evt_disposition_{disposition_id}", EventType.DISPOSITION_CREATED, subject,
                row["disposed_at"], dict(row))
    if row["stage_after"] is not None and row["stage_before"] != row["stage_after"]:
        await _emit(conn, f"evt_stage_{disposition_id}", EventType.LEAD_STAGE_CHANGED, subject, row["disposed_at"],
                    # The same keys as a text's stage change (`stage_changed_by_text`): one schema.
                    {"lead_id": row["lead_id"], "message_id": None, "call_id": row["call_id"],
                     "disposition_id": disposition_id, "stage_before": row["stage_before"],
                     "stage_after": row["stage_after"]})


async def _recording(conn: asyncpg.Connection, recording_id: str) -> None:
    row = await conn.fetchrow(
        "SELECT recording_id, call_id, lead_id, format, duration_seconds, size_bytes, sha256, recorded_at "
        "FROM recordings WHERE recording_id = $1", recording_id)
    if row is None:
        return
    payload = {**dict(row), "url": recording_path(recording_id)}
    await _emit(conn, f"evt_recording_{recording_id}", EventType.RECORDING_READY, row["call_id"] or recording_id,
                row["recorded_at"], payload)


# ---- the queue -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claimed:
    """A delivery to attempt now."""

    delivery_id: int
    subscription_id: str
    url: str
    secrets: tuple[str, ...]
    event_id: str
    event_type: str
    occurred_at: datetime
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


async def claim(conn: Connection, *, limit: int, lease_seconds: float, exclude: Sequence[int] = (),
                per_subscription: int | None = None) -> list[Claimed]:
    """Due deliveries whose subject has no earlier pending event for the same subscription,
    leased (next_attempt_at pushed out) so no other dispatcher takes them meanwhile. With
    `per_subscription`, no subscription gets more than that many in flight (counting `exclude`,
    the ones in flight already): one dead endpoint cannot take every slot. Each subscription's
    next delivery goes first, first attempts before retries, so a backlog of retries to dead
    endpoints never starves a live one. A disabled subscription's deliveries wait."""
    async with conn.transaction():
        rows = await conn.fetch(
            "WITH candidates AS (SELECT d.delivery_id, d.subscription_id, d.attempts, "
            "    row_number() OVER (PARTITION BY d.subscription_id ORDER BY d.event_seq) AS n "
            "  FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.subscription_id = d.subscription_id "
            "  AND s.active "
            "  WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND NOT (d.delivery_id = ANY($3::bigint[])) "
            "  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.subscription_id = d.subscription_id "
            "      AND e.subject = d.subject AND e.status = 'pending' AND e.event_seq < d.event_seq)), "
            "busy AS (SELECT subscription_id, count(*) AS n FROM webhook_deliveries "
            "  WHERE delivery_id = ANY($3::bigint[]) GROUP BY subscription_id), "
            "due AS (SELECT d.delivery_id FROM webhook_deliveries d JOIN candidates c USING (delivery_id) "
            "  LEFT JOIN busy b ON b.subscription_id = c.subscription_id "
            "  WHERE $4::integer IS NULL OR c.n + COALESCE(b.n, 0) <= $4 "
            "  ORDER BY c.n, c.attempts > 0, d.event_seq LIMIT $1 FOR UPDATE OF d SKIP LOCKED) "
            "UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2) "
            "FROM due WHERE d.delivery_id = due.delivery_id "
            "RETURNING d.delivery_id, d.subscription_id, d.event_id, d.attempts, d.created_at",
            limit, lease_seconds, list(exclude), per_subscription)
        if not rows:
            return []
        details = await conn.fetch(
            "SELECT d.delivery_id, s.url, s.secret, "
            "CASE WHEN s.previous_expires_at > now() THEN s.previous_secret END AS previous_secret, "
            "e.event_type, e.occurred_at, e.payload FROM webhook_deliveries d "
            "JOIN webhook_subscriptions s USING (subscription_id) JOIN webhook_events e USING (event_id) "
            "WHERE d.delivery_id = ANY($1::bigint[])", [row["delivery_id"] for row in rows])
    by_id = {row["delivery_id"]: row for row in details}
    claimed = []
    for row in rows:
        detail = by_id[row["delivery_id"]]
        keys = (detail["secret"],) + ((detail["previous_secret"],) if detail["previous_secret"] else ())
        claimed.append(Claimed(row["delivery_id"], row["subscription_id"], detail["url"], keys, row["event_id"],
                               detail["event_type"], detail["occurred_at"], json.loads(detail["payload"]),
                               row["attempts"], row["created_at"]))
    return sorted(claimed, key=lambda found: found.delivery_id)


async def record_attempt(conn: Connection, delivery_id: int, *, attempted_at: datetime,
                         status_code: int | None, error: str | None, duration_ms: int, delivered: bool,
                         next_attempt_at: datetime | None) -> None:
    """An attempt's result: delivered, retried at `next_attempt_at`, or parked (neither)."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, error, duration_ms) "
            "VALUES ($1, $2, $3, $4, $5)", delivery_id, attempted_at, status_code, error, duration_ms)
        status = "delivered" if delivered else ("pending" if next_attempt_at is not None else "parked")
        await conn.execute(
            "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, last_attempt_at = $3::timestamptz, "
            "last_status = $4, last_error = $5, delivered_at = CASE WHEN $6::boolean THEN $3::timestamptz END, "
            "next_attempt_at = COALESCE($7::timestamptz, next_attempt_at) WHERE delivery_id = $1",
            delivery_id, status, attempted_at, status_code, error, delivered, next_attempt_at)


async def replay(conn: Connection, subscription_id: str, *, event_id: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 event_types: Sequence[str] | None = None) -> int:
    """New deliveries of past events (one, or those that occurred in [since, until)) of the types
    the subscription takes; the number queued."""
    status = await conn.execute(
        "INSERT INTO webhook_deliveries (subscription_id, event_id, event_seq, subject, replay) "
        "SELECT s.subscription_id, e.event_id, e.seq, e.subject, true FROM webhook_events e "
        "JOIN webhook_subscriptions s ON s.subscription_id = $1 AND e.event_type = ANY(s.event_types) "
        "WHERE ($2::text IS NULL OR e.event_id = $2) AND ($3::timestamptz IS NULL OR e.occurred_at >= $3) "
        "AND ($4::timestamptz IS NULL OR e.occurred_at < $4) AND ($5::text[] IS NULL OR e.event_type = ANY($5)) "
        "ORDER BY e.seq",
        subscription_id, event_id, since, until, None if event_types is None else list(event_types))
    return int(status.split()[-1])


async def deliveries(conn: Connection, subscription_id: str, *, status: str | None = None,
                     before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT d.delivery_id, d.event_id, e.event_type, e.occurred_at, d.subject, d.status, d.attempts, "
        "d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error, d.delivered_at, d.replay, d.created_at "
        "FROM webhook_deliveries d JOIN webhook_events e USING (event_id) WHERE d.subscription_id = $1 "
        "AND ($2::text IS NULL OR d.status = $2) AND ($3::bigint IS NULL OR d.delivery_id < $3) "
        "ORDER BY d.delivery_id DESC LIMIT $4", subscription_id, status, before, limit)
    return [dict(row) for row in rows]


async def attempts(conn: Connection, delivery_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT attempted_at, status_code, error, duration_ms FROM webhook_attempts WHERE delivery_id = $1 "
        "ORDER BY attempt_id", delivery_id)
    return [dict(row) for row in rows]


def backoff(attempts_made: int, *, first: float, most: float) -> timedelta:
    """Wait before the next attempt: `first` seconds, doubling, at most `most`."""
    return timedelta(seconds=min(most, first * 2 ** max(0, attempts_made - 1)))
