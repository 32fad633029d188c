"""Reads of the CRM tables for the HTTP API and the controller, plus API tokens and
idempotency keys (which need an answer now, so they are written directly, not via the outbox).

Rows come back as frozen dataclasses; nothing here returns a bare `asyncpg.Record`.

PostgreSQL down (issue 10, item 5): every query goes through one `Outage` guard. A connection
that fails (refused, cut, timed out) raises `DatabaseOutage` (a `DatabaseUnavailable` with a
`retry_after`), the outage is logged once, and for the next fraction of a second (growing to
5 s) every query fails at once instead of each waiting for its own connect timeout; then one
query probes, and the first that succeeds logs the end of the outage. Lists are read a page
at a time by keyset (`after` = the last row's sort key), so they never skip or repeat a row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time as clock
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from compliance_rules.telemarketing import LIVE_ANSWER_AMD_RESULTS, AbandonTally
from crm_bridge.dispositions import DispositionCode, PipelineStage
from crm_bridge.pg import DatabaseNotAnswering, DatabaseUnavailable, describe_server
from crm_bridge.records import AgentRole, CallDirection, CallOutcome, DialMode

log = structlog.get_logger(__name__)

# Budgets while PostgreSQL misbehaves: a new connection, one query, a wait for a free connection.
CONNECT_TIMEOUT = 2.0
QUERY_TIMEOUT = 5.0
ACQUIRE_TIMEOUT = 5.0
# What a failed connection looks like (the server is gone, refusing, restarting or stalled).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError, asyncpg.OperatorInterventionError, asyncpg.TooManyConnectionsError,
)


class DatabaseOutage(DatabaseUnavailable):
    """PostgreSQL does not answer now; `retry_after` seconds is a fair wait before retrying."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Outage:
    """The state of PostgreSQL as this process sees it: one log line when it goes, one when it
    is back; while it is gone, calls fail fast until the next probe is due (0.5 s, doubling to 5 s)."""

    FIRST_WAIT = 0.5
    LONGEST_WAIT = 5.0

    def __init__(self, clock_: Callable[[], float] = clock.monotonic) -> None:
        self._clock = clock_
        self.down_since: float | None = None
        self.last_error = ""
        self._retry_at = 0.0
        self._wait = self.FIRST_WAIT
        self._probing = False

    @property
    def down(self) -> bool:
        return self.down_since is not None

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run one database call: fail at once while an outage is known, else note how it went."""
        probe = False
        if self.down_since is not None:
            now = self._clock()
            if now < self._retry_at or self._probing:
                raise DatabaseOutage(f"PostgreSQL does not answer ({self.last_error})",
                                     retry_after=max(1.0, self._retry_at - now))
            self._probing = probe = True
        try:
            yield
        except CONNECTION_ERRORS as error:
            self._failed(error, probe)
            raise DatabaseOutage(f"PostgreSQL does not answer ({self.last_error})",
                                 retry_after=max(1.0, self._wait)) from None
        except BaseException:
            if probe:
                self._probing = False
            raise
        else:
            self._succeeded()

    def _failed(self, error: BaseException, probe: bool) -> None:
        now = self._clock()
        self.last_error = type(error).__name__ + (f": {error}" if str(error) else "")
        if self.down_since is None:
            self.down_since = now
            self._wait = self.FIRST_WAIT
            self._retry_at = now + self._wait
            log.warning("crm_database_unavailable", error=self.last_error)
        elif probe:  # calls already in flight when it went down do not push the next probe back
            self._probing = False
            self._wait = min(self._wait * 2, self.LONGEST_WAIT)
            self._retry_at = now + self._wait

    def _succeeded(self) -> None:
        self._probing = False
        if self.down_since is not None:
            log.warning("crm_database_back", down_seconds=round(self._clock() - self.down_since, 1))
            self.down_since = None
            self._wait = self.FIRST_WAIT


class _GuardedPool:
    """The pool's query methods, each run under the outage guard with a time budget."""

    def __init__(self, pool: asyncpg.Pool, outage: Outage) -> None:
        self.pool = pool
        self.outage = outage

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with self.outage.guard():
            return list(await self.pool.fetch(query, *args, timeout=QUERY_TIMEOUT))

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        async with self.outage.guard():
            return await self.pool.fetchrow(query, *args, timeout=QUERY_TIMEOUT)

    async def fetchval(self, query: str, *args: object) -> Any:
        async with self.outage.guard():
            return await self.pool.fetchval(query, *args, timeout=QUERY_TIMEOUT)

    async def execute(self, query: str, *args: object) -> str:
        async with self.outage.guard():
            return str(await self.pool.execute(query, *args, timeout=QUERY_TIMEOUT))

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        async with self.outage.guard(), self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as connection:
            yield connection

    async def close(self) -> None:
        await self.pool.close()


class TokenRole(StrEnum):
    """Who an API token speaks for (`api_tokens.role`)."""

    CRM = "crm"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


@dataclass(frozen=True)
class Consent:
    consent_id: str
    kind: str
    phone: str | None
    obtained_at: datetime
    source: str
    evidence_ref: str | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def in_force_at(self, now: datetime) -> bool:
        """Obtained, not revoked and not expired at `now`."""
        if self.obtained_at > now:
            return False
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True)
class Lead:
    lead_id: str
    first_name: str | None
    last_name: str | None
    phones: tuple[str, ...]
    email: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    state: str | None
    zip: str | None
    timezone_hint: str | None
    pipeline_stage: PipelineStage
    source: str | None
    owner_agent_id: str | None
    callback_at: datetime | None
    needs_review: bool
    review_reason: str | None
    created_at: datetime
    updated_at: datetime
    consents: tuple[Consent, ...] = ()


@dataclass(frozen=True)
class Agent:
    agent_id: str
    name: str
    sip_endpoint: str | None
    role: AgentRole
    active: bool


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    caller_id: str | None
    window_start: time | None
    window_end: time | None
    dial_mode: DialMode
    purpose: str
    required_consents: tuple[str, ...]
    amd_enabled: bool
    amd_settings: Mapping[str, Any]
    speed_to_lead: bool
    seller_name: str | None
    dnc_callback_number: str | None
    max_abandon_rate: float
    active: bool
    line_of_business: str | None = None
    """Sets how long the campaign's recordings are kept (`recordings.retention`)."""
    abandon_setpoint: float | None = None
    """The predictive pacer's target for the 30-day abandon rate (None: the pacer's default)."""
    dispositions: tuple[str, ...] = ()
    """The codes its agents may pick (empty: every code)."""
    prompts: Mapping[str, str] = field(default_factory=dict)
    """Asterisk sound names played instead of the generated messages (`safe_harbor`)."""


@dataclass(frozen=True)
class Call:
    call_id: str
    version: int
    direction: CallDirection
    lead_id: str | None
    agent_id: str | None
    campaign_id: str | None
    lead_number: str | None
    agent_endpoint: str | None
    caller_id: str | None
    requested_at: datetime
    agent_answered_at: datetime | None
    lead_ringing_at: datetime | None
    lead_answered_at: datetime | None
    bridged_at: datetime | None
    ended_at: datetime | None
    outcome: CallOutcome | None
    hangup_cause: int | None
    hangup_cause_text: str | None
    sip_code: int | None
    ring_seconds: float | None
    talk_seconds: float | None
    total_seconds: float | None
    recording_id: str | None
    compliance_decision_id: str | None
    amd_result: str | None
    amd_cause: str | None
    greeting_ended_at: datetime | None
    safe_harbor_played: bool
    abandoned: bool
    updated_at: datetime


@dataclass(frozen=True)
class Disposition:
    disposition_id: str
    call_id: str | None
    lead_id: str | None
    agent_id: str | None
    code: DispositionCode
    notes: str | None
    callback_at: datetime | None
    stage_before: PipelineStage | None
    stage_after: PipelineStage | None
    disposed_at: datetime


@dataclass(frozen=True)
class Recording:
    """One archived call recording (`recordings`)."""

    recording_id: str
    call_id: str | None
    lead_id: str | None
    storage_uri: str
    format: str
    duration_seconds: float | None
    size_bytes: int | None
    sha256: str
    encryption_key_id: str | None
    retain_until: datetime | None
    recorded_at: datetime
    channels: int = 1
    channel_layout: str = "mixed"
    line_of_business: str | None = None
    legal_hold: bool = False
    legal_hold_by: str | None = None
    legal_hold_reason: str | None = None
    legal_hold_at: datetime | None = None
    purged_at: datetime | None = None
    """Set once the audio and its data key are destroyed; the row stays as the tombstone."""
    purged_by: str | None = None
    purge_reason: str | None = None


_RECORDING_COLUMNS = ", ".join(Recording.__dataclass_fields__)


@dataclass(frozen=True)
class Message:
    """One text sent or received (`messages`), with its latest delivery receipt."""

    message_id: str
    version: int
    direction: str
    kind: str
    lead_id: str | None
    agent_id: str | None
    campaign_id: str | None
    from_number: str
    to_number: str
    body: str
    encoding: str
    segments: int
    template_id: str | None
    transport: str
    provider_message_id: str | None
    status: str
    status_detail: str | None
    delivery_status: str | None
    delivery_error: str | None
    delivered_at: datetime | None
    compliance_decision_id: str | None
    requested_by: str | None
    created_at: datetime
    sent_at: datetime | None
    updated_at: datetime


_MESSAGE_COLUMNS = ", ".join(Message.__dataclass_fields__)


def _message(row: asyncpg.Record) -> Message:
    values = dict(row)
    decision = values["compliance_decision_id"]
    values["compliance_decision_id"] = None if decision is None else str(decision)
    return Message(**values)


@dataclass(frozen=True)
class MessageTemplate:
    template_id: str
    campaign_id: str
    name: str
    body: str
    created_by: str | None
    created_at: datetime


_TEMPLATE_COLUMNS = ", ".join(MessageTemplate.__dataclass_fields__)


@dataclass(frozen=True)
class OptOutStanding:
    """A number's opt-outs since its last re-subscription (START), by source."""

    sources: tuple[str, ...]

    @property
    def opted_out(self) -> bool:
        return bool(self.sources)

    @property
    def by_text_only(self) -> bool:
        return self.opted_out and all(source == "sms_keyword" for source in self.sources)


@dataclass(frozen=True)
class ApiToken:
    token_id: str
    role: TokenRole
    agent_id: str | None
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `secret` is shown once to the user and never stored."""

    token: ApiToken
    secret: str = field(repr=False)


@dataclass(frozen=True)
class CampaignLead:
    """A lead due to be dialed in a campaign (`campaign_leads` joined with `leads`)."""

    lead: Lead
    campaign_id: str
    priority: int
    attempts: int
    next_attempt_at: datetime | None
    callback_at: datetime | None
    callback_agent_id: str | None


@dataclass(frozen=True)
class DecisionRow:
    """One audited decision of the compliance gate (`compliance_decisions`)."""

    decision_id: str
    decided_at: datetime
    phone: str
    lead_id: str | None
    campaign_id: str | None
    purpose: str
    allowed: bool
    reasons: list[dict[str, Any]]
    timezones: list[Any]
    local_times: list[Any]
    data_versions: dict[str, Any]
    notices: list[dict[str, Any]]


_DECISION_COLUMNS = ", ".join(DecisionRow.__dataclass_fields__)


@dataclass(frozen=True)
class OptOutRow:
    """One opt-out record (`opt_outs`)."""

    opt_out_id: str
    phone: str
    source: str
    lead_id: str | None
    call_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class StoredRequest:
    """What an `Idempotency-Key` holds: claimed now, or the first request's fingerprint and,
    once it was answered, its answer."""

    claimed: bool
    fingerprint: str
    status: int | None = None
    content_type: str | None = None
    location: str | None = None
    body: bytes | None = field(default=None, repr=False)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _decision(row: asyncpg.Record) -> DecisionRow:
    values = dict(row)
    values["decision_id"] = str(values["decision_id"])
    for name in ("reasons", "timezones", "local_times", "data_versions", "notices"):
        if isinstance(values[name], str):
            values[name] = json.loads(values[name])
    return DecisionRow(**values)


def hash_token(secret: str) -> str:
    """sha256 hex of an API token secret (the secret has 256 bits of entropy; no salt needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


_CALL_COLUMNS = ", ".join(Call.__dataclass_fields__)


def _optional_enum(enum: type[StrEnum], value: str | None) -> Any:
    return None if value is None else enum(value)


def _call(row: asyncpg.Record) -> Call:
    values = dict(row)
    values["direction"] = CallDirection(values["direction"])
    values["outcome"] = _optional_enum(CallOutcome, values["outcome"])
    decision = values["compliance_decision_id"]
    values["compliance_decision_id"] = None if decision is None else str(decision)
    return Call(**values)


def _consent(row: asyncpg.Record) -> Consent:
    return Consent(**{name: row[name] for name in Consent.__dataclass_fields__})


def _lead(row: asyncpg.Record, consents: Sequence[Consent]) -> Lead:
    values = {name: row[name] for name in Lead.__dataclass_fields__ if name != "consents"}
    values["phones"] = tuple(values["phones"])
    values["state"] = values["state"].strip() if values["state"] else None
    values["pipeline_stage"] = PipelineStage(values["pipeline_stage"])
    return Lead(**values, consents=tuple(consents))


def _campaign(row: asyncpg.Record) -> Campaign:
    values = {name: row[name] for name in Campaign.__dataclass_fields__}
    values["dial_mode"] = DialMode(values["dial_mode"])
    values["required_consents"] = tuple(values["required_consents"])
    values["amd_settings"] = json.loads(values["amd_settings"])
    values["dispositions"] = tuple(values["dispositions"])
    values["prompts"] = json.loads(values["prompts"])
    values["max_abandon_rate"] = float(values["max_abandon_rate"])
    if values["abandon_setpoint"] is not None:
        values["abandon_setpoint"] = float(values["abandon_setpoint"])
    return Campaign(**values)


def _token(row: asyncpg.Record) -> ApiToken:
    values = {name: row[name] for name in ApiToken.__dataclass_fields__}
    values["role"] = TokenRole(values["role"])
    return ApiToken(**values)


class CrmStore:
    """Typed access to the CRM tables over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.outage = Outage()
        self._pool = _GuardedPool(pool, self.outage)

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> CrmStore:
        """Create the pool; `DatabaseUnavailable` (one sentence) when PostgreSQL cannot be used."""
        try:
            pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, timeout=CONNECT_TIMEOUT,
                                             command_timeout=QUERY_TIMEOUT)
        except (OSError, TimeoutError):
            raise DatabaseNotAnswering(
                f"PostgreSQL at {describe_server(dsn)} does not answer: start it or set DIALER_PG_DSN"
            ) from None
        except asyncpg.InvalidCatalogNameError:
            raise DatabaseUnavailable(
                f"the CRM database does not exist on {describe_server(dsn)}: run `dialer db migrate`"
            ) from None
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    @property
    def reader(self) -> _GuardedPool:
        """The pool, for the read-only queries of other library modules (`crm_bridge.reports`),
        through the same outage guard as the store's own."""
        return self._pool

    def acquire(self) -> Any:
        """One pooled connection, for work that needs it throughout (a list import's transaction):
        `async with store.acquire() as conn`."""
        return self._pool.acquire()

    # --- calls --------------------------------------------------------------------------

    async def get_call(self, call_id: str) -> Call | None:
        row = await self._pool.fetchrow(f"SELECT {_CALL_COLUMNS} FROM calls WHERE call_id = $1", call_id)
        return None if row is None else _call(row)

    async def ping(self) -> None:
        """One round trip to PostgreSQL (`DatabaseUnavailable` when it does not answer)."""
        await self._pool.fetchval("SELECT 1")

    async def list_calls(
        self,
        *,
        lead_id: str | None = None,
        agent_id: str | None = None,
        campaign_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> list[Call]:
        """Newest first (`requested_at`, then `call_id`, both descending); every given filter must
        match; `after`: the sort key of the last call of the previous page. `limit` is capped at
        1001 (a page of 1000 and one more to tell whether another page follows)."""
        rows = await self._pool.fetch(
            f"SELECT {_CALL_COLUMNS} FROM calls "
            "WHERE ($1::text IS NULL OR lead_id = $1) AND ($2::text IS NULL OR agent_id = $2) "
            "AND ($3::text IS NULL OR campaign_id = $3) AND ($4::timestamptz IS NULL OR requested_at >= $4) "
            "AND ($6::timestamptz IS NULL OR (requested_at, call_id) < ($6, $7::text)) "
            "ORDER BY requested_at DESC, call_id DESC LIMIT $5",
            lead_id,
            agent_id,
            campaign_id,
            since,
            max(1, min(limit, 1001)),
            after[0] if after else None,
            after[1] if after else None,
        )
        return [_call(row) for row in rows]

    async def get_recording(self, recording_id: str) -> Recording | None:
        row = await self._pool.fetchrow(
            f"SELECT {_RECORDING_COLUMNS} FROM recordings WHERE recording_id = $1", recording_id
        )
        return None if row is None else Recording(**dict(row))

    async def list_recordings(
        self, *, call_id: str | None = None, lead_id: str | None = None, limit: int = 100,
        after: tuple[datetime, str] | None = None, agent_id: str | None = None, campaign_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None, disposition: str | None = None,
        min_seconds: float | None = None, max_seconds: float | None = None,
    ) -> list[Recording]:
        """Newest first (`recorded_at`, then `recording_id`, descending); every given filter must
        match (agent and campaign: the recorded call's; disposition: any of the call's; since
        included, until excluded; duration in seconds, both included); `after` as for
        `list_calls`. `limit` is capped at 1001."""
        columns = ", ".join(f"r.{name.strip()}" for name in _RECORDING_COLUMNS.split(","))
        rows = await self._pool.fetch(
            f"SELECT {columns} FROM recordings r "
            "WHERE ($1::text IS NULL OR r.call_id = $1) AND ($2::text IS NULL OR r.lead_id = $2) "
            "AND ($4::timestamptz IS NULL OR (r.recorded_at, r.recording_id) < ($4, $5::text)) "
            "AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM calls c WHERE c.call_id = r.call_id AND c.agent_id = $6)) "
            "AND ($7::text IS NULL OR EXISTS (SELECT 1 FROM calls c WHERE c.call_id = r.call_id "
            "AND c.campaign_id = $7)) "
            "AND ($8::timestamptz IS NULL OR r.recorded_at >= $8) AND ($9::timestamptz IS NULL OR r.recorded_at < $9) "
            "AND ($10::text IS NULL OR EXISTS (SELECT 1 FROM dispositions d WHERE d.call_id = r.call_id "
            "AND d.code = $10)) "
            "AND ($11::float8 IS NULL OR r.duration_seconds >= $11) "
            "AND ($12::float8 IS NULL OR r.duration_seconds <= $12) "
            "ORDER BY r.recorded_at DESC, r.recording_id DESC LIMIT $3",
            call_id,
            lead_id,
            max(1, min(limit, 1001)),
            after[0] if after else None,
            after[1] if after else None,
            agent_id, campaign_id, since, until, disposition, min_seconds, max_seconds,
        )
        return [Recording(**dict(row)) for row in rows]

    async def list_recording_accesses(self, recording_id: str) -> list[dict[str, Any]]:
        """The audit trail of who was handed a recording's audio, oldest first."""
        rows = await self._pool.fetch(
            "SELECT * FROM recording_accesses WHERE recording_id = $1 ORDER BY accessed_at, access_id", recording_id
        )
        return [dict(row) for row in rows]

    async def list_open_calls(self, limit: int = 1000) -> list[Call]:
        """Calls with no end time yet (in progress, or left open by a controller that died)."""
        rows = await self._pool.fetch(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE ended_at IS NULL ORDER BY requested_at LIMIT $1", limit
        )
        return [_call(row) for row in rows]

    async def list_open_monitor_sessions(self, limit: int = 1000) -> list[dict[str, object]]:
        """Supervisors' sessions not ended (live, or left open by a controller that died)."""
        rows = await self._pool.fetch(
            "SELECT * FROM monitor_sessions WHERE state <> 'ended' ORDER BY requested_at LIMIT $1", limit
        )
        sessions = [dict(row) for row in rows]
        for session in sessions:
            if isinstance(session.get("modes"), str):
                session["modes"] = json.loads(str(session["modes"]))
        return sessions

    async def campaign_lead_attempts(self, campaign_id: str, lead_id: str) -> int:
        """How many times the campaign has dialed the lead (0 when it is not a member)."""
        attempts = await self._pool.fetchval(
            "SELECT attempts FROM campaign_leads WHERE campaign_id = $1 AND lead_id = $2", campaign_id, lead_id
        )
        return int(attempts or 0)

    async def opted_out_phones(self, *, after: str = "", limit: int = 10000) -> list[str]:
        """Every opted-out number (distinct, in order), a page at a time after `after`."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT phone FROM opt_outs WHERE phone > $1 ORDER BY phone LIMIT $2", after, limit
        )
        return [str(row["phone"]) for row in rows]

    async def list_dispositions(self, *, call_id: str | None = None, lead_id: str | None = None) -> list[Disposition]:
        rows = await self._pool.fetch(
            "SELECT disposition_id, call_id, lead_id, agent_id, code, notes, callback_at, stage_before, "
            "stage_after, disposed_at FROM dispositions "
            "WHERE ($1::text IS NULL OR call_id = $1) AND ($2::text IS NULL OR lead_id = $2) "
            "ORDER BY disposed_at, disposition_id",
            call_id,
            lead_id,
        )
        return [
            Disposition(
                disposition_id=row["disposition_id"],
                call_id=row["call_id"],
                lead_id=row["lead_id"],
                agent_id=row["agent_id"],
                code=DispositionCode(row["code"]),
                notes=row["notes"],
                callback_at=row["callback_at"],
                stage_before=_optional_enum(PipelineStage, row["stage_before"]),
                stage_after=_optional_enum(PipelineStage, row["stage_after"]),
                disposed_at=row["disposed_at"],
            )
            for row in rows
        ]

    async def abandon_tally(self, campaign_id: str, since: datetime) -> AbandonTally:
        """The abandonment of `campaign_id`'s calls requested at or after `since`, as the rule
        counts it (`compliance_rules.telemarketing`: live answers by their AMD verdict, outbound
        only)."""
        row = await self._pool.fetchrow(
            "SELECT count(*) FILTER (WHERE amd_result = ANY($3::text[])) AS live_answers, "
            "count(*) FILTER (WHERE abandoned AND amd_result = ANY($3::text[])) AS abandoned "
            "FROM calls WHERE campaign_id = $1 AND requested_at >= $2 AND direction = 'outbound'",
            campaign_id,
            since,
            sorted(LIVE_ANSWER_AMD_RESULTS),
        )
        assert row is not None  # an aggregate always returns a row
        return AbandonTally(live_answers=int(row["live_answers"]), abandoned=int(row["abandoned"]))

    async def gate_blocks(self, campaign_id: str, start: datetime, end: datetime) -> dict[str, int]:
        """The reasons of the gate's voice decisions for `campaign_id` that blocked, decided in
        [start, end), counted per reason code (a decision with two reasons counts under both)."""
        rows = await self._pool.fetch(
            "SELECT reason->>'code' AS code, count(*) AS blocks "
            "FROM compliance_decisions d CROSS JOIN LATERAL jsonb_array_elements(d.reasons) AS reason "
            "WHERE d.campaign_id = $1 AND NOT d.allowed AND d.channel = 'voice' "
            "AND d.decided_at >= $2 AND d.decided_at < $3 GROUP BY 1",
            campaign_id,
            start,
            end,
        )
        return {str(row["code"]): int(row["blocks"]) for row in rows}

    # --- leads, agents, campaigns -------------------------------------------------------------

    async def due_campaign_leads(
        self, campaign_id: str, now: datetime, *, limit: int = 100, exclude: Sequence[str] = ()
    ) -> list[CampaignLead]:
        """Leads of a campaign that may be attempted at `now`: not done, next attempt (or
        callback) due, with a phone, not in Lost/Issued; highest priority first, then
        callbacks due, then the longest waiting. `exclude`: lead ids the hopper already holds."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT m.priority AS m_priority, m.attempts AS m_attempts, m.next_attempt_at AS m_next_attempt_at, "
                "m.callback_at AS m_callback_at, m.callback_agent_id AS m_callback_agent_id, l.* "
                "FROM campaign_leads m JOIN leads l ON l.lead_id = m.lead_id "
                "WHERE m.campaign_id = $1 AND NOT m.done AND cardinality(l.phones) > 0 "
                "AND l.pipeline_stage NOT IN ('lost', 'issued') "
                "AND coalesce(m.callback_at, m.next_attempt_at, '-infinity') <= $2 "
                "AND NOT (m.lead_id = ANY($3::text[])) "
                "ORDER BY m.priority DESC, m.callback_at NULLS LAST, m.next_attempt_at NULLS FIRST, "
                "m.created_at, m.lead_id LIMIT $4",
                campaign_id,
                now,
                list(exclude),
                limit,
            )
            ids = [row["lead_id"] for row in rows]
            consent_rows = await conn.fetch(
                "SELECT * FROM consent_records WHERE lead_id = ANY($1::text[]) ORDER BY obtained_at, consent_id", ids
            ) if ids else []
        consents: dict[str, list[Consent]] = {}
        for row in consent_rows:
            consents.setdefault(row["lead_id"], []).append(_consent(row))
        return [
            CampaignLead(
                lead=_lead(row, consents.get(row["lead_id"], [])),
                campaign_id=campaign_id,
                priority=row["m_priority"],
                attempts=row["m_attempts"],
                next_attempt_at=row["m_next_attempt_at"],
                callback_at=row["m_callback_at"],
                callback_agent_id=row["m_callback_agent_id"],
            )
            for row in rows
        ]

    async def get_lead(self, lead_id: str) -> Lead | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM leads WHERE lead_id = $1", lead_id)
            if row is None:
                return None
            consents = await conn.fetch(
                "SELECT * FROM consent_records WHERE lead_id = $1 ORDER BY obtained_at, consent_id", lead_id
            )
        return _lead(row, [_consent(c) for c in consents])

    async def find_leads_by_phone(self, phone: str) -> list[Lead]:
        """Leads that list `phone` (E.164), most recently updated first (inbound matching)."""
        ids = await self._pool.fetch(
            "SELECT lead_id FROM leads WHERE phones @> ARRAY[$1::text] ORDER BY updated_at DESC LIMIT 20", phone
        )
        leads = [await self.get_lead(row["lead_id"]) for row in ids]
        return [lead for lead in leads if lead is not None]

    async def find_leads_by_email(self, email: str) -> list[Lead]:
        """Leads with this e-mail (case-insensitive), most recently updated first (intake matching)."""
        ids = await self._pool.fetch(
            "SELECT lead_id FROM leads WHERE lower(email) = lower($1) ORDER BY updated_at DESC LIMIT 20", email
        )
        leads = [await self.get_lead(row["lead_id"]) for row in ids]
        return [lead for lead in leads if lead is not None]

    async def search_leads(
        self,
        *,
        name: str | None = None,
        phone: str | None = None,
        email: str | None = None,
        worked_by: str | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> list[Lead]:
        """Leads matching every given filter, newest first (`created_at`, then `lead_id`,
        descending). `name`: part of "first last" (case-insensitive); `phone`: E.164; `email`:
        case-insensitive; `worked_by`: an agent's id, to keep only the leads it owns or has
        called. `after` as for `list_calls`; `limit` capped at 1001."""
        pattern = None if name is None else "%" + _like_escape(name) + "%"
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM leads l "
                "WHERE ($1::text IS NULL OR concat_ws(' ', l.first_name, l.last_name) ILIKE $1 ESCAPE '\\') "
                "AND ($2::text IS NULL OR l.phones @> ARRAY[$2::text]) "
                "AND ($3::text IS NULL OR lower(l.email) = lower($3)) "
                "AND ($4::text IS NULL OR l.owner_agent_id = $4 "
                "     OR EXISTS (SELECT 1 FROM calls c WHERE c.lead_id = l.lead_id AND c.agent_id = $4)) "
                "AND ($6::timestamptz IS NULL OR (l.created_at, l.lead_id) < ($6, $7::text)) "
                "ORDER BY l.created_at DESC, l.lead_id DESC LIMIT $5",
                pattern, phone, email, worked_by, max(1, min(limit, 1001)),
                after[0] if after else None, after[1] if after else None,
                timeout=QUERY_TIMEOUT,
            )
            ids = [row["lead_id"] for row in rows]
            consent_rows = await conn.fetch(
                "SELECT * FROM consent_records WHERE lead_id = ANY($1::text[]) ORDER BY obtained_at, consent_id", ids,
                timeout=QUERY_TIMEOUT,
            ) if ids else []
        consents: dict[str, list[Consent]] = {}
        for row in consent_rows:
            consents.setdefault(row["lead_id"], []).append(_consent(row))
        return [_lead(row, consents.get(row["lead_id"], [])) for row in rows]

    async def lead_worked_by(self, lead_id: str, agent_id: str) -> bool:
        """Whether the agent owns the lead or has called it (what an agent token may see)."""
        return bool(await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM leads WHERE lead_id = $1 AND owner_agent_id = $2) "
            "OR EXISTS (SELECT 1 FROM calls WHERE lead_id = $1 AND agent_id = $2)", lead_id, agent_id))

    async def get_agent(self, agent_id: str) -> Agent | None:
        row = await self._pool.fetchrow(
            "SELECT agent_id, name, sip_endpoint, role, active FROM agents WHERE agent_id = $1", agent_id
        )
        if row is None:
            return None
        return Agent(row["agent_id"], row["name"], row["sip_endpoint"], AgentRole(row["role"]), row["active"])

    async def get_campaign(self, campaign_id: str) -> Campaign | None:
        row = await self._pool.fetchrow("SELECT * FROM campaigns WHERE campaign_id = $1", campaign_id)
        return None if row is None else _campaign(row)

    async def list_campaign_changes(self, campaign_id: str, limit: int = 500) -> list[dict[str, Any]]:
        """The audit of a campaign's control (`campaign_changes`), newest first."""
        rows = await self._pool.fetch(
            "SELECT change_id::text AS change_id, campaign_id, action, actor, actor_role, changed_at, before, after "
            "FROM campaign_changes WHERE campaign_id = $1 ORDER BY changed_at DESC, change_id LIMIT $2",
            campaign_id, limit)
        return [{**dict(row), "before": json.loads(row["before"]), "after": json.loads(row["after"])} for row in rows]

    async def get_monitor_session(self, monitor_id: str) -> dict[str, object] | None:
        """A supervisor's monitoring session as last written (`monitor_sessions`), or None."""
        row = await self._pool.fetchrow("SELECT * FROM monitor_sessions WHERE monitor_id = $1", monitor_id)
        if row is None:
            return None
        session = dict(row)
        if isinstance(session.get("modes"), str):
            session["modes"] = json.loads(str(session["modes"]))
        return session

    # --- texts --------------------------------------------------------------------------

    async def get_message(self, message_id: str) -> Message | None:
        row = await self._pool.fetchrow(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE message_id = $1", message_id)
        return None if row is None else _message(row)

    async def list_messages(self, *, lead_id: str, limit: int = 100) -> list[Message]:
        """A lead's texts, oldest first (a conversation reads down); `limit` is capped at 1000."""
        rows = await self._pool.fetch(
            f"SELECT * FROM (SELECT {_MESSAGE_COLUMNS} FROM messages WHERE lead_id = $1 "
            "ORDER BY created_at DESC, message_id DESC LIMIT $2) newest ORDER BY created_at, message_id",
            lead_id, max(1, min(limit, 1000)),
        )
        return [_message(row) for row in rows]

    async def latest_message(
        self, *, direction: str, lead_number: str, agency_number: str | None = None, since: datetime | None = None,
        kinds: Sequence[str] | None = None,
    ) -> Message | None:
        """The newest text to (outbound) or from (inbound) a lead's number, optionally with one
        of our numbers, after `since`, of one of `kinds`."""
        lead_column, agency_column = ("to_number", "from_number") if direction == "outbound" else ("from_number", "to_number")
        row = await self._pool.fetchrow(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE direction = $1 AND {lead_column} = $2 "
            f"AND ($3::text IS NULL OR {agency_column} = $3) AND ($4::timestamptz IS NULL OR created_at >= $4) "
            "AND ($5::text[] IS NULL OR kind = ANY($5::text[])) ORDER BY created_at DESC LIMIT 1",
            direction, lead_number, agency_number, since, list(kinds) if kinds is not None else None,
        )
        return None if row is None else _message(row)

    async def list_unfinished_messages(self, statuses: Sequence[str], *, before: datetime,
                                       after: tuple[datetime, str] | None = None, limit: int = 1000) -> list[Message]:
        """Outbound texts created `before` an instant whose status is one of `statuses` (left
        unfinished by a controller that died), oldest first; a page starts `after` the
        (created_at, message_id) of the last text of the page before."""
        since, after_id = after if after is not None else (None, "")
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE direction = 'outbound' AND status = ANY($1::text[]) "
            "AND created_at < $2 AND ($3::timestamptz IS NULL OR (created_at, message_id) > ($3, $4)) "
            "ORDER BY created_at, message_id LIMIT $5",
            list(statuses), before, since, after_id, limit,
        )
        return [_message(row) for row in rows]

    async def find_message_by_provider_id(self, provider_message_id: str) -> Message | None:
        row = await self._pool.fetchrow(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE provider_message_id = $1 ORDER BY created_at DESC LIMIT 1",
            provider_message_id,
        )
        return None if row is None else _message(row)

    async def get_template(self, template_id: str) -> MessageTemplate | None:
        row = await self._pool.fetchrow(
            f"SELECT {_TEMPLATE_COLUMNS} FROM message_templates WHERE template_id = $1", template_id
        )
        return None if row is None else MessageTemplate(**dict(row))

    async def find_template(self, campaign_id: str, name: str) -> MessageTemplate | None:
        row = await self._pool.fetchrow(
            f"SELECT {_TEMPLATE_COLUMNS} FROM message_templates WHERE campaign_id = $1 AND name = $2", campaign_id, name
        )
        return None if row is None else MessageTemplate(**dict(row))

    async def opt_out_standing(self, phone: str) -> OptOutStanding:
        """The sources of `phone`'s opt-outs made after its last re-subscription."""
        rows = await self._pool.fetch(
            "SELECT source FROM opt_outs WHERE phone = $1 AND created_at > "
            "coalesce((SELECT max(created_at) FROM opt_ins WHERE phone = $1), '-infinity') ORDER BY created_at",
            phone,
        )
        return OptOutStanding(tuple(row["source"] for row in rows))

    async def opted_out(self, phone: str) -> bool:
        """Whether `phone` is on the company's do-not-call list in PostgreSQL."""
        return bool(await self._pool.fetchval("SELECT EXISTS (SELECT 1 FROM opt_outs WHERE phone = $1)", phone))

    async def list_opt_outs(self, phone: str) -> list[OptOutRow]:
        """The CRM's opt-out records of `phone`, oldest first."""
        rows = await self._pool.fetch(
            "SELECT opt_out_id, phone, source, lead_id, call_id, created_at FROM opt_outs WHERE phone = $1 "
            "ORDER BY created_at, opt_out_id", phone)
        return [OptOutRow(**dict(row)) for row in rows]

    # --- compliance decisions -----------------------------------------------------------

    async def list_decisions(
        self,
        *,
        phone: str | None = None,
        lead_id: str | None = None,
        campaign_id: str | None = None,
        allowed: bool | None = None,
        since: datetime | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> list[DecisionRow]:
        """The gate's audited decisions, newest first (`decided_at`, then `decision_id`,
        descending); every given filter must match. `after` as for `list_calls`."""
        rows = await self._pool.fetch(
            f"SELECT {_DECISION_COLUMNS} FROM compliance_decisions "
            "WHERE ($1::text IS NULL OR phone = $1) AND ($2::text IS NULL OR lead_id = $2) "
            "AND ($3::text IS NULL OR campaign_id = $3) AND ($4::boolean IS NULL OR allowed = $4) "
            "AND ($5::timestamptz IS NULL OR decided_at >= $5) "
            "AND ($7::timestamptz IS NULL OR (decided_at, decision_id) < ($7, $8::uuid)) "
            "ORDER BY decided_at DESC, decision_id DESC LIMIT $6",
            phone, lead_id, campaign_id, allowed, since, max(1, min(limit, 1001)),
            after[0] if after else None, after[1] if after else None,
        )
        return [_decision(row) for row in rows]

    async def get_decision(self, decision_id: str) -> DecisionRow | None:
        """One audited decision (None for an id that is not a decision's)."""
        try:
            key = uuid.UUID(decision_id)
        except ValueError:
            return None
        row = await self._pool.fetchrow(
            f"SELECT {_DECISION_COLUMNS} FROM compliance_decisions WHERE decision_id = $1", key)
        return None if row is None else _decision(row)

    # --- API tokens ---------------------------------------------------------------------

    async def issue_token(
        self, role: TokenRole, *, agent_id: str | None = None, label: str | None = None
    ) -> IssuedToken:
        """Create a token; only its sha256 is stored. Agent tokens must name their agent."""
        if role is TokenRole.AGENT and not agent_id:
            raise ValueError("an agent token needs the agent_id it speaks for")
        secret = f"dlr_{secrets.token_urlsafe(32)}"
        row = await self._pool.fetchrow(
            "INSERT INTO api_tokens (token_id, token_hash, role, agent_id, label) VALUES ($1, $2, $3, $4, $5) "
            "RETURNING token_id, role, agent_id, label, created_at, revoked_at",
            f"tok_{secrets.token_hex(8)}",
            hash_token(secret),
            role.value,
            agent_id,
            label,
        )
        assert row is not None
        return IssuedToken(_token(row), secret)

    async def authenticate(self, secret: str) -> ApiToken | None:
        """The live (not revoked) token whose secret this is, or None."""
        row = await self._pool.fetchrow(
            "SELECT token_id, role, agent_id, label, created_at, revoked_at FROM api_tokens "
            "WHERE token_hash = $1 AND revoked_at IS NULL",
            hash_token(secret),
        )
        return None if row is None else _token(row)

    async def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; False when it does not exist or was already revoked."""
        status = await self._pool.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL", token_id
        )
        return status == "UPDATE 1"

    async def list_tokens(self) -> list[ApiToken]:
        rows = await self._pool.fetch(
            "SELECT token_id, role, agent_id, label, created_at, revoked_at FROM api_tokens ORDER BY created_at"
        )
        return [_token(row) for row in rows]

    # --- idempotency keys ---------------------------------------------------------------

    async def claim_idempotency_key(self, key: str, call_id: str) -> str:
        """Bind `key` to `call_id` unless it is already bound; return the call id it is bound to.

        A retried `POST /v1/calls` with the same key gets the first call's id back instead of
        placing a second call.
        """
        async with self._pool.acquire() as conn:
            bound = await conn.fetchval(
                "INSERT INTO idempotency_keys (key, call_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING "
                "RETURNING call_id",
                key,
                call_id,
            )
            if bound is None:
                bound = await conn.fetchval("SELECT call_id FROM idempotency_keys WHERE key = $1", key)
        return str(bound)

    async def release_idempotency_key(self, key: str, bound_id: str) -> None:
        """Unbind `key` from `bound_id` (the request it named was refused and did nothing)."""
        await self._pool.execute("DELETE FROM idempotency_keys WHERE key = $1 AND call_id = $2", key, bound_id)

    async def claim_request(self, key: str, fingerprint: str, *, lease_seconds: float) -> StoredRequest:
        """Claim `key` for a request with this fingerprint, or say what holds it: the first
        answer (`status` set), or another request still in progress (`claimed` False, no
        status). A claim whose lease ran out (its process died before answering) is taken over."""
        claimed = await self._pool.fetchval(
            "INSERT INTO idempotent_requests (key, fingerprint, locked_until) "
            "VALUES ($1, $2, now() + make_interval(secs => $3)) "
            "ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, locked_until = EXCLUDED.locked_until "
            "WHERE idempotent_requests.status IS NULL AND idempotent_requests.locked_until < now() "
            "RETURNING key",
            key, fingerprint, float(lease_seconds),
        )
        if claimed is not None:
            return StoredRequest(claimed=True, fingerprint=fingerprint)
        row = await self._pool.fetchrow(
            "SELECT fingerprint, status, content_type, location, body FROM idempotent_requests WHERE key = $1", key)
        if row is None:  # released between the two statements: try again
            return await self.claim_request(key, fingerprint, lease_seconds=lease_seconds)
        body = row["body"]
        return StoredRequest(claimed=False, fingerprint=row["fingerprint"], status=row["status"],
                             content_type=row["content_type"], location=row["location"],
                             body=None if body is None else bytes(body))

    async def complete_request(
        self, key: str, *, status: int, content_type: str, location: str | None, body: bytes
    ) -> None:
        """Keep the first answer to the request holding `key`."""
        await self._pool.execute(
            "UPDATE idempotent_requests SET status = $2, content_type = $3, location = $4, body = $5, "
            "completed_at = now() WHERE key = $1",
            key, status, content_type, location, body,
        )

    async def release_request(self, key: str) -> None:
        """Forget a claim that got no answer worth keeping (a 5xx), so a retry runs again."""
        await self._pool.execute("DELETE FROM idempotent_requests WHERE key = $1 AND status IS NULL", key)

    async def forget_requests(self, older_than: datetime) -> int:
        """Delete the idempotent requests created before `older_than`; returns how many."""
        status = await self._pool.execute("DELETE FROM idempotent_requests WHERE created_at < $1", older_than)
        return int(status.split()[-1])

    async def get_idempotency_key(self, key: str) -> str | None:
        value = await self._pool.fetchval("SELECT call_id FROM idempotency_keys WHERE key = $1", key)
        return None if value is None else str(value)

    async def forget_idempotency_keys(self, older_than: datetime) -> int:
        """Delete keys created before `older_than`; returns how many."""
        status = await self._pool.execute("DELETE FROM idempotency_keys WHERE created_at < $1", older_than)
        return int(status.split()[-1])
