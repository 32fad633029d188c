"""The records written to the CRM tables through the outbox, and their validation. Pure.

`validate(kind, record)` checks a record dict field by field and returns its normal form: a
JSON-safe dict (timestamps as ISO-8601 UTC strings, UUIDs in canonical form) that the outbox
stores and later applies. A bad record raises `InvalidRecord` naming the kind and the field,
so nothing half-valid is ever stored.

Full-snapshot kinds (`call`, `recording`, `agent_upsert`, `campaign_upsert`) describe the whole
row: an absent optional field is written as NULL (or its default). `lead_upsert` is a patch:
only the fields present are changed, an explicit None clears one.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from enum import StrEnum
from typing import Any

from crm_bridge.dispositions import DispositionCode, PipelineStage
from crm_bridge.kinds import RecordKind


class CallDirection(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class CallOutcome(StrEnum):
    """How a call ended (`calls.outcome`); None while it is in progress."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    UNALLOCATED = "unallocated"
    CONGESTION = "congestion"
    REJECTED = "rejected"
    MACHINE = "machine"
    ABANDONED = "abandoned"
    AGENT_NO_ANSWER = "agent_no_answer"
    BLOCKED = "blocked"
    CANCELED = "canceled"
    FAILED = "failed"


class Channel(StrEnum):
    """Which channel a compliance decision was for."""

    VOICE = "voice"
    SMS = "sms"


class MessageDirection(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class TextEncoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


class DeliveryStatus(StrEnum):
    """A delivery receipt's status; the last three are final."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


FINAL_DELIVERY_STATUSES = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED})


class AgentRole(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class DialMode(StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"


class InvalidRecord(ValueError):
    """A record refused before it is stored; `field` is None for record-level problems."""

    def __init__(self, kind: str, field: str | None, problem: str) -> None:
        where = f"{kind}.{field}" if field else kind
        super().__init__(f"{where}: {problem}")
        self.kind = kind
        self.field = field
        self.problem = problem


class _Bad(Exception):
    """Internal: a field's value is wrong; carries the problem text."""


Json = Any
Parser = Callable[[object], Json]


class SqlType(StrEnum):
    """How a normalized JSON value is turned into a query parameter."""

    PLAIN = "plain"
    TIMESTAMP = "timestamp"
    TIME = "time"
    JSONB = "jsonb"


@dataclass(frozen=True)
class FieldSpec:
    parse: Parser
    required: bool = False
    default: Json = None
    sql: SqlType = SqlType.PLAIN


# --- field parsers -------------------------------------------------------------------------

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ZIP = re.compile(r"^[0-9]{5}(-[0-9]{4})?$")
_STATE = re.compile(r"^[A-Z]{2}$")


# What PostgreSQL cannot store in text or jsonb: NUL, and lone surrogates (not UTF-8). A record
# holding one would be accepted here and refused at delivery, so it is refused here.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _identifier(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("must be a non-empty string")
    if len(value) > 200 or _CONTROL.search(value) or _UNSTORABLE.search(value):
        raise _Bad("must be at most 200 printable characters")
    return value


def _text(limit: int = 2000) -> Parser:
    def parse(value: object) -> str:
        if not isinstance(value, str):
            raise _Bad("must be a string")
        if len(value) > limit:
            raise _Bad(f"must be at most {limit} characters")
        if _UNSTORABLE.search(value):
            raise _Bad("must not contain NUL characters or lone surrogates (PostgreSQL cannot store them)")
        return value

    return parse


def _nonempty_text(value: object) -> str:
    text: str = _text(200)(value)
    if not text.strip():
        raise _Bad("must not be empty")
    return text


def _e164(value: object) -> str:
    if not isinstance(value, str) or not _E164.match(value):
        raise _Bad(f"must be an E.164 number like +15555550123, got {value!r}")
    return value


def _timestamp(value: object) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad(f"must be an ISO-8601 time, got {value!r}") from None
    if not isinstance(value, datetime):
        raise _Bad("must be a datetime or an ISO-8601 string")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _Bad("must include a UTC offset")
    return value.astimezone(UTC).isoformat()


def _time_of_day(value: object) -> str:
    if isinstance(value, str):
        try:
            value = time.fromisoformat(value)
        except ValueError:
            raise _Bad(f"must be a time of day like 09:00, got {value!r}") from None
    if not isinstance(value, time) or value.tzinfo is not None:
        raise _Bad("must be a local time of day (no zone) like 09:00")
    return value.isoformat()


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Bad("must be true or false")
    return value


def _integer(low: int, high: int) -> Parser:
    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad("must be a whole number")
        if not low <= value <= high:
            raise _Bad(f"must be between {low} and {high}")
        return value

    return parse


def _number(low: float, high: float = float("inf")) -> Parser:
    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad("must be a number")
        if not low <= float(value) <= high:
            raise _Bad(f"must be between {low} and {high}")
        return float(value)

    return parse


def _uuid(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise _Bad(f"must be a UUID, got {value!r}")


def _choice(enum: type[StrEnum]) -> Parser:
    def parse(value: object) -> str:
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return enum(value).value
        except ValueError:
            valid = ", ".join(member.value for member in enum)
            raise _Bad(f"must be one of {valid}; got {value!r}") from None

    return parse


def _sha256(value: object) -> str:
    if not isinstance(value, str) or not _SHA256.match(value.lower()):
        raise _Bad("must be 64 hexadecimal characters")
    return value.lower()


def _zip(value: object) -> str:
    if not isinstance(value, str) or not _ZIP.match(value):
        raise _Bad(f"must be a US ZIP code like 30301 or 30301-1234, got {value!r}")
    return value


def _state(value: object) -> str:
    if not isinstance(value, str) or not _STATE.match(value.upper()):
        raise _Bad(f"must be a two-letter state code, got {value!r}")
    return value.upper()


def _email(value: object) -> str:
    text: str = _text(320)(value)
    if "@" not in text.strip("@") or any(c.isspace() for c in text):
        raise _Bad(f"is not an email address: {value!r}")
    return text


def _json_value(value: object) -> Json:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise _Bad(f"must be plain JSON ({error})") from None


def _json_list(value: object) -> list[Json]:
    if not isinstance(value, list | tuple):
        raise _Bad("must be a list")
    result: list[Json] = _json_value(list(value))
    return result


def _json_object(value: object) -> dict[str, Json]:
    if not isinstance(value, Mapping):
        raise _Bad("must be an object")
    result: dict[str, Json] = _json_value(dict(value))
    return result


def _list_of(item: Parser) -> Parser:
    def parse(value: object) -> list[Json]:
        if not isinstance(value, list | tuple):
            raise _Bad("must be a list")
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item(element))
            except _Bad as bad:
                raise _Bad(f"item {index} {bad}") from None
        return out

    return parse


def _reasons(value: object) -> list[Json]:
    reasons = _json_list(value)
    for index, reason in enumerate(reasons):
        if not isinstance(reason, dict) or not isinstance(reason.get("code"), str):
            raise _Bad(f"item {index} must be an object with a string 'code'")
        for key in ("message", "citation"):
            if reason.get(key) is not None and not isinstance(reason[key], str):
                raise _Bad(f"item {index} {key!r} must be a string")
    return reasons


def _optional(parse: Parser) -> Parser:
    def parse_optional(value: object) -> Json:
        return None if value is None else parse(value)

    return parse_optional


# --- kinds ---------------------------------------------------------------------------------

_ID = FieldSpec(_optional(_identifier))
_TS = FieldSpec(_optional(_timestamp), sql=SqlType.TIMESTAMP)
_TEXT = FieldSpec(_optional(_text()))
_SECONDS = FieldSpec(_optional(_number(0.0)))


def _required(parse: Parser, sql: SqlType = SqlType.PLAIN) -> FieldSpec:
    return FieldSpec(parse, required=True, sql=sql)


CONSENT_FIELDS: dict[str, FieldSpec] = {
    "consent_id": _required(_identifier),
    "kind": _required(_nonempty_text),
    "phone": FieldSpec(_optional(_e164)),
    "obtained_at": _required(_timestamp, SqlType.TIMESTAMP),
    "source": _required(_nonempty_text),
    "evidence_ref": _TEXT,
    "expires_at": _TS,
    "revoked_at": _TS,
}


def _consents(value: object) -> list[Json]:
    if not isinstance(value, list | tuple):
        raise _Bad("must be a list")
    out = []
    for index, element in enumerate(value):
        if not isinstance(element, Mapping):
            raise _Bad(f"item {index} must be an object")
        try:
            out.append(_check_fields(element, CONSENT_FIELDS, partial=False))
        except _FieldProblem as problem:
            raise _Bad(f"item {index} {problem.field}: {problem.problem}") from None
    return out


FIELDS: dict[RecordKind, dict[str, FieldSpec]] = {
    RecordKind.CALL: {
        "call_id": _required(_identifier),
        "version": _required(_integer(0, 2**62)),
        "direction": _required(_choice(CallDirection)),
        "lead_id": _ID,
        "agent_id": _ID,
        "campaign_id": _ID,
        "lead_number": FieldSpec(_optional(_e164)),
        "agent_endpoint": _TEXT,
        "caller_id": FieldSpec(_optional(_e164)),
        "requested_at": _required(_timestamp, SqlType.TIMESTAMP),
        "agent_answered_at": _TS,
        "lead_ringing_at": _TS,
        "lead_answered_at": _TS,
        "bridged_at": _TS,
        "ended_at": _TS,
        "outcome": FieldSpec(_optional(_choice(CallOutcome))),
        # Q.850 cause (ChannelDestroyed.cause) and SIP response (tech_cause).
        "hangup_cause": FieldSpec(_optional(_integer(0, 127))),
        "hangup_cause_text": _TEXT,
        "sip_code": FieldSpec(_optional(_integer(100, 699))),
        "ring_seconds": _SECONDS,
        "talk_seconds": _SECONDS,
        "total_seconds": _SECONDS,
        "recording_id": _ID,
        "compliance_decision_id": FieldSpec(_optional(_uuid)),
        "amd_result": FieldSpec(_optional(_text(40))),
        "amd_cause": FieldSpec(_optional(_text(200))),
        "greeting_ended_at": _TS,
        "safe_harbor_played": FieldSpec(_boolean, default=False),
        "abandoned": FieldSpec(_boolean, default=False),
        # The carrier trunk that carried the call, and the tries that failed on others first.
        "trunk": FieldSpec(_optional(_text(64))),
        "trunk_attempts": FieldSpec(_json_list, default=[], sql=SqlType.JSONB),
    },
    RecordKind.DISPOSITION: {
        "disposition_id": _required(_identifier),
        "call_id": _ID,
        "lead_id": _ID,
        "agent_id": _ID,
        "campaign_id": _ID,
        "code": _required(_choice(DispositionCode)),
        "notes": FieldSpec(_optional(_text(4000))),
        "callback_at": _TS,
        "disposed_at": _required(_timestamp, SqlType.TIMESTAMP),
    },
    RecordKind.OPT_OUT: {
        "opt_out_id": _required(_identifier),
        "phone": _required(_e164),
        "source": _required(_nonempty_text),
        "lead_id": _ID,
        "call_id": _ID,
        "created_at": _required(_timestamp, SqlType.TIMESTAMP),
    },
    # Exactly the decision dict the compliance gate emits.
    RecordKind.COMPLIANCE_DECISION: {
        "decision_id": _required(_uuid),
        "decided_at": _required(_timestamp, SqlType.TIMESTAMP),
        # Not E.164-checked: the gate also audits refusals of numbers it could not parse.
        "phone": _required(_text(64)),
        "lead_id": _ID,
        "campaign_id": _ID,
        "purpose": _required(_nonempty_text),
        "allowed": _required(_boolean),
        "reasons": FieldSpec(_reasons, default=[], sql=SqlType.JSONB),
        "timezones": FieldSpec(_json_list, default=[], sql=SqlType.JSONB),
        "local_times": FieldSpec(_json_list, default=[], sql=SqlType.JSONB),
        "data_versions": FieldSpec(_json_object, default={}, sql=SqlType.JSONB),
        "notices": FieldSpec(_reasons, default=[], sql=SqlType.JSONB),
        "channel": FieldSpec(_choice(Channel), default=Channel.VOICE.value),
        "text_kind": FieldSpec(_optional(_text(40))),
    },
    RecordKind.RECORDING: {
        "recording_id": _required(_identifier),
        "call_id": _ID,
        "lead_id": _ID,
        "storage_uri": _required(_nonempty_text),
        "format": _required(_nonempty_text),
        "duration_seconds": _SECONDS,
        "size_bytes": FieldSpec(_optional(_integer(0, 2**62))),
        "sha256": _required(_sha256),
        "encryption_key_id": _TEXT,
        "retain_until": _TS,
        "recorded_at": _required(_timestamp, SqlType.TIMESTAMP),
        # 1: the call mixed; 2: agent and lead apart ("agent,lead", left to right).
        "channels": FieldSpec(_integer(1, 2), default=1),
        "channel_layout": FieldSpec(_text(40), default="mixed"),
        "line_of_business": FieldSpec(_optional(_text(40))),
    },
    RecordKind.LEAD_UPSERT: {
        "lead_id": _required(_identifier),
        "first_name": _TEXT,
        "last_name": _TEXT,
        "phones": FieldSpec(_list_of(_e164), default=[]),
        "email": FieldSpec(_optional(_email)),
        "address_line1": _TEXT,
        "address_line2": _TEXT,
        "city": _TEXT,
        "state": FieldSpec(_optional(_state)),
        "zip": FieldSpec(_optional(_zip)),
        "timezone_hint": FieldSpec(_optional(_text(64))),
        "pipeline_stage": FieldSpec(_choice(PipelineStage), default=PipelineStage.NEW_LEAD.value),
        "source": _TEXT,
        "owner_agent_id": _ID,
        "callback_at": _TS,
        "needs_review": FieldSpec(_boolean, default=False),
        "review_reason": _TEXT,
        # A list import's extra columns (custom.NAME in the mapping): NAME -> text.
        "custom_fields": FieldSpec(_json_object, default={}, sql=SqlType.JSONB),
        # Not a column: consent rows upserted with the lead (consent_records).
        "consents": FieldSpec(_consents, default=[]),
    },
    RecordKind.AGENT_UPSERT: {
        "agent_id": _required(_identifier),
        "name": _required(_nonempty_text),
        "sip_endpoint": _TEXT,
        "role": FieldSpec(_choice(AgentRole), default=AgentRole.AGENT.value),
        "active": FieldSpec(_boolean, default=True),
    },
    RecordKind.CAMPAIGN_UPSERT: {
        "campaign_id": _required(_identifier),
        "name": _required(_nonempty_text),
        "caller_id": FieldSpec(_optional(_e164)),
        "window_start": FieldSpec(_optional(_time_of_day), sql=SqlType.TIME),
        "window_end": FieldSpec(_optional(_time_of_day), sql=SqlType.TIME),
        "dial_mode": FieldSpec(_choice(DialMode), default=DialMode.PREVIEW.value),
        "purpose": FieldSpec(_nonempty_text, default="telemarketing"),
        "required_consents": FieldSpec(_list_of(_nonempty_text), default=[]),
        "amd_enabled": FieldSpec(_boolean, default=True),
        "amd_settings": FieldSpec(_json_object, default={}, sql=SqlType.JSONB),
        "speed_to_lead": FieldSpec(_boolean, default=False),
        "seller_name": _TEXT,
        "dnc_callback_number": FieldSpec(_optional(_e164)),
        # 47 CFR 64.1200(a)(7)(i): at most 3% of answered calls abandoned per 30 days.
        "max_abandon_rate": FieldSpec(_number(0.0, 0.03), default=0.03),
        "active": FieldSpec(_boolean, default=True),
        # Sets how long its recordings are kept (recordings.retention.LineOfBusiness).
        "line_of_business": FieldSpec(_optional(_text(40))),
        # The predictive pacer's target for the 30-day abandon rate (at most max_abandon_rate).
        "abandon_setpoint": FieldSpec(_optional(_number(0.0, 0.03))),
    },
    # Campaign control's change of a campaign's control settings (dialer.campaign.control): a
    # patch of those columns only, so an admin's edit of the others in between is not undone.
    RecordKind.CAMPAIGN_SETTINGS: {
        "campaign_id": _required(_identifier),
        "window_start": FieldSpec(_optional(_time_of_day), sql=SqlType.TIME),
        "window_end": FieldSpec(_optional(_time_of_day), sql=SqlType.TIME),
        "dial_mode": FieldSpec(_choice(DialMode)),
        "amd_enabled": FieldSpec(_boolean),
        "amd_settings": FieldSpec(_json_object, sql=SqlType.JSONB),
        "seller_name": _TEXT,
        "dnc_callback_number": FieldSpec(_optional(_e164)),
        "abandon_setpoint": FieldSpec(_optional(_number(0.0, 0.03))),
    },
    # A lead's membership of a campaign and its dialing history (a patch, like lead_upsert).
    RecordKind.CAMPAIGN_LEAD: {
        "membership_id": _required(_identifier),
        "campaign_id": _required(_identifier),
        "lead_id": _required(_identifier),
        "priority": FieldSpec(_integer(-(2**31), 2**31 - 1), default=0),
        "attempts": FieldSpec(_integer(0, 10_000), default=0),
        "last_attempt_at": _TS,
        "next_attempt_at": _TS,
        "last_outcome": FieldSpec(_optional(_text(40))),
        "last_call_id": _ID,
        "callback_at": _TS,
        "callback_agent_id": _ID,
        "done": FieldSpec(_boolean, default=False),
        "done_reason": _TEXT,
    },
    # A supervisor's listen/whisper/barge session on a live call (a versioned snapshot, like calls).
    RecordKind.MONITOR_SESSION: {
        "monitor_id": _required(_identifier),
        "version": _required(_integer(0, 2**62)),
        "call_id": _required(_identifier),
        "call_kind": _required(_text(40)),
        "agent_id": _ID,
        "campaign_id": _ID,
        "supervisor_endpoint": _required(_text(200)),
        "requested_by": _ID,
        "state": _required(_text(40)),
        "mode": _required(_text(40)),
        "modes": FieldSpec(_json_list, default=[], sql=SqlType.JSONB),
        "requested_at": _required(_timestamp, SqlType.TIMESTAMP),
        "answered_at": _TS,
        "ended_at": _TS,
        "end_reason": FieldSpec(_optional(_text(40))),
        "end_detail": _TEXT,
        "supervisor_cause": FieldSpec(_optional(_integer(0, 127))),
    },
    # One hand-out of a recording's audio (an immutable audit row).
    RecordKind.RECORDING_ACCESS: {
        "access_id": _required(_uuid),
        "recording_id": _required(_identifier),
        "call_id": _ID,
        "token_id": _ID,
        "role": _required(_text(40)),
        "agent_id": _ID,
        "channel": _required(_text(40)),
        "remote": FieldSpec(_optional(_text(200))),
        "bytes": FieldSpec(_optional(_integer(0, 2**62))),
        "accessed_at": _required(_timestamp, SqlType.TIMESTAMP),
    },
    # A text sent or received (a versioned snapshot for outbound texts, like calls).
    RecordKind.MESSAGE: {
        "message_id": _required(_identifier),
        "version": _required(_integer(0, 2**62)),
        "direction": _required(_choice(MessageDirection)),
        "kind": _required(_text(40)),
        "lead_id": _ID,
        "agent_id": _ID,
        "campaign_id": _ID,
        # Not E.164-checked: an inbound text may come from a short code.
        "from_number": _required(_nonempty_text),
        "to_number": _required(_nonempty_text),
        "body": _required(_text(4000)),
        "encoding": _required(_choice(TextEncoding)),
        "segments": _required(_integer(0, 1000)),
        "template_id": _ID,
        "transport": _required(_text(40)),
        "provider_message_id": FieldSpec(_optional(_text(200))),
        "status": _required(_text(40)),
        "status_detail": _TEXT,
        "compliance_decision_id": FieldSpec(_optional(_uuid)),
        "requested_by": _ID,
        "created_at": _required(_timestamp, SqlType.TIMESTAMP),
        "sent_at": _TS,
    },
    # A delivery receipt of a sent text (an immutable row; its status is copied onto the message).
    RecordKind.MESSAGE_RECEIPT: {
        "receipt_id": _required(_identifier),
        "message_id": _ID,
        "provider_message_id": _required(_text(200)),
        "status": _required(_choice(DeliveryStatus)),
        "error": FieldSpec(_optional(_text(200))),
        "received_at": _required(_timestamp, SqlType.TIMESTAMP),
    },
    RecordKind.MESSAGE_TEMPLATE: {
        "template_id": _required(_identifier),
        "campaign_id": _required(_identifier),
        "name": _required(_nonempty_text),
        "body": _required(_text(1600)),
        "created_by": _ID,
        "created_at": _required(_timestamp, SqlType.TIMESTAMP),
    },
    # START/UNSTOP after a texted revocation: new consent evidence (an immutable row).
    RecordKind.OPT_IN: {
        "opt_in_id": _required(_identifier),
        "phone": _required(_e164),
        "source": _required(_nonempty_text),
        "lead_id": _ID,
        "message_id": _ID,
        "created_at": _required(_timestamp, SqlType.TIMESTAMP),
    },
    # One evidence packet made (an immutable audit row; docs/evidence.md).
    RecordKind.EVIDENCE_PACKET: {
        "packet_id": _required(_identifier),
        "created_at": _required(_timestamp, SqlType.TIMESTAMP),
        "requested_by": _required(_nonempty_text),
        "role": _required(_text(40)),
        "channel": _required(_text(40)),
        "subject": FieldSpec(_json_object, required=True, sql=SqlType.JSONB),
        "manifest_sha256": _required(_sha256),
        "files": _required(_integer(0, 2**31 - 1)),
        "recording_ids": FieldSpec(_list_of(_identifier), default=[], sql=SqlType.JSONB),
        "legal_hold": FieldSpec(_boolean, default=False),
        "checkpoint_id": FieldSpec(_optional(_integer(0, 2**62))),
    },
    # One change of an agent's session state (an immutable row; occupancy is read from these).
    RecordKind.AGENT_STATE: {
        "change_id": _required(_identifier),
        "agent_id": _required(_identifier),
        "state": _required(_text(40)),
        "since": _required(_timestamp, SqlType.TIMESTAMP),
        "version": _required(_integer(0, 2**62)),
        "session_id": _required(_identifier),
        "campaign_ids": FieldSpec(_list_of(_identifier), default=[]),
        "call_id": _ID,
        "pause_reason": FieldSpec(_optional(_text(200))),
    },
    # One campaign control action or settings change (an immutable audit row).
    RecordKind.CAMPAIGN_CHANGE: {
        "change_id": _required(_uuid),
        "campaign_id": _required(_identifier),
        "action": _required(_text(40)),
        "actor": _required(_nonempty_text),
        "actor_role": _required(_text(40)),
        "changed_at": _required(_timestamp, SqlType.TIMESTAMP),
        "before": FieldSpec(_json_object, default={}, sql=SqlType.JSONB),
        "after": FieldSpec(_json_object, default={}, sql=SqlType.JSONB),
    },
}

# Primary key of each kind's row.
KEY_FIELD: dict[RecordKind, str] = {
    RecordKind.CALL: "call_id",
    RecordKind.DISPOSITION: "disposition_id",
    RecordKind.OPT_OUT: "opt_out_id",
    RecordKind.COMPLIANCE_DECISION: "decision_id",
    RecordKind.RECORDING: "recording_id",
    RecordKind.LEAD_UPSERT: "lead_id",
    RecordKind.AGENT_UPSERT: "agent_id",
    RecordKind.CAMPAIGN_UPSERT: "campaign_id",
    RecordKind.CAMPAIGN_LEAD: "membership_id",
    RecordKind.MONITOR_SESSION: "monitor_id",
    RecordKind.RECORDING_ACCESS: "access_id",
    RecordKind.MESSAGE: "message_id",
    RecordKind.MESSAGE_RECEIPT: "receipt_id",
    RecordKind.MESSAGE_TEMPLATE: "template_id",
    RecordKind.OPT_IN: "opt_in_id",
    RecordKind.EVIDENCE_PACKET: "packet_id",
    RecordKind.AGENT_STATE: "change_id",
    RecordKind.CAMPAIGN_CHANGE: "change_id",
    RecordKind.CAMPAIGN_SETTINGS: "campaign_id",
}

PARTIAL_KINDS: frozenset[RecordKind] = frozenset({RecordKind.LEAD_UPSERT, RecordKind.CAMPAIGN_LEAD,
                                                  RecordKind.CAMPAIGN_SETTINGS})


class _FieldProblem(Exception):
    def __init__(self, field: str | None, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


def _check_fields(
    record: Mapping[str, object], specs: Mapping[str, FieldSpec], *, partial: bool
) -> dict[str, Json]:
    unknown = sorted(str(key) for key in record if key not in specs)
    if unknown:
        raise _FieldProblem(None, f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(specs)}")
    normal: dict[str, Json] = {}
    for name, spec in specs.items():
        if name not in record:
            if spec.required:
                raise _FieldProblem(name, "is required")
            if not partial:
                normal[name] = spec.default
            continue
        value = record[name]
        if value is None and spec.required:
            raise _FieldProblem(name, "is required")
        if value is None and spec.default is not None:
            raise _FieldProblem(name, "must not be null")
        try:
            normal[name] = spec.parse(value)
        except _Bad as bad:
            raise _FieldProblem(name, str(bad)) from None
    return normal


def parse_kind(kind: str) -> RecordKind:
    """The `RecordKind` for `kind`, or `InvalidRecord` listing the valid kinds."""
    try:
        return RecordKind(kind)
    except ValueError:
        valid = ", ".join(k.value for k in RecordKind)
        raise InvalidRecord(str(kind), None, f"unknown record kind; expected one of {valid}") from None


def validate(kind: str, record: Mapping[str, object]) -> dict[str, Json]:
    """Check `record` for `kind` and return its JSON-safe normal form; raise `InvalidRecord`."""
    record_kind = parse_kind(kind)
    if not isinstance(record, Mapping):
        raise InvalidRecord(record_kind.value, None, "must be a mapping of field names to values")
    try:
        normal = _check_fields(record, FIELDS[record_kind], partial=record_kind in PARTIAL_KINDS)
    except _FieldProblem as problem:
        raise InvalidRecord(record_kind.value, problem.field, problem.problem) from None
    _check_record(record_kind, normal)
    return normal


def _check_record(kind: RecordKind, normal: Mapping[str, Json]) -> None:
    """Rules spanning several fields."""
    if kind is RecordKind.DISPOSITION:
        code = DispositionCode(normal["code"])
        if code is DispositionCode.CALLBACK and normal["callback_at"] is None:
            raise InvalidRecord(kind.value, "callback_at", "is required for a callback disposition")
    if kind is RecordKind.CALL:
        requested = normal["requested_at"]
        for name in ("agent_answered_at", "lead_ringing_at", "lead_answered_at", "bridged_at", "ended_at"):
            if normal[name] is not None and datetime.fromisoformat(normal[name]) < datetime.fromisoformat(
                requested
            ):
                raise InvalidRecord(kind.value, name, "is earlier than requested_at")
    if kind is RecordKind.CAMPAIGN_SETTINGS and ("window_start" in normal) != ("window_end" in normal):
        raise InvalidRecord(kind.value, "window_end", "window_start and window_end go together")
    if kind is RecordKind.CAMPAIGN_SETTINGS and "window_start" in normal:
        start, end = normal["window_start"], normal["window_end"]
        if (start is None) != (end is None):
            raise InvalidRecord(kind.value, "window_end", "window_start and window_end go together")
    if kind is RecordKind.CAMPAIGN_UPSERT:
        start, end = normal["window_start"], normal["window_end"]
        if (start is None) != (end is None):
            raise InvalidRecord(kind.value, "window_end", "window_start and window_end go together")
        if start is not None and start >= end:
            raise InvalidRecord(kind.value, "window_end", "must be later than window_start")


def record_key(kind: RecordKind, normal: Mapping[str, Json]) -> str:
    """The primary key value of a normalized record."""
    return str(normal[KEY_FIELD[kind]])
