"""What a controller that died left behind in the CRM, closed at start, once.

A `calls` row with no end, a supervisor's `monitor_sessions` row still `connected`, a campaign
lead whose attempt never got an outcome (so the next controller would redial it at once): each
is closed with an outcome saying why. The snapshots written here carry a version above any the
dead process can still have in its outbox (small counters), so a late snapshot of the dead
process never reopens them. Opt-outs: the Redis list every gate reads is rebuilt from the CRM's
`opt_outs` rows (PostgreSQL is the record of every opt-out), so a flushed Redis never forgets
one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog

from compliance_rules.optout import block
from compliance_rules.store import DncStore
from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import RecordSink, pending_records
from crm_bridge.records import KEY_FIELD
from crm_bridge.store import Call, CrmStore

log = structlog.get_logger(__name__)

# Above every snapshot version a dead controller may still have queued (they count from 1).
RECONCILED_VERSION_BASE = 10**12
RESTARTED = "controller restarted during the call"


def reconciled_version() -> int:
    return RECONCILED_VERSION_BASE + int(time.time() * 1000)


def _closed_call(call: Call, now: datetime) -> dict[str, object]:
    return {
        "call_id": call.call_id,
        "version": reconciled_version(),
        "direction": call.direction.value,
        "lead_id": call.lead_id,
        "agent_id": call.agent_id,
        "campaign_id": call.campaign_id,
        "lead_number": call.lead_number,
        "agent_endpoint": call.agent_endpoint,
        "caller_id": call.caller_id,
        "requested_at": call.requested_at,
        "agent_answered_at": call.agent_answered_at,
        "lead_ringing_at": call.lead_ringing_at,
        "lead_answered_at": call.lead_answered_at,
        "bridged_at": call.bridged_at,
        "ended_at": now,
        "outcome": closed_outcome(call),
        "hangup_cause_text": RESTARTED,
        "total_seconds": (now - call.requested_at).total_seconds(),
        "talk_seconds": (now - call.bridged_at).total_seconds() if call.bridged_at else None,
        "recording_id": call.recording_id,
        "compliance_decision_id": call.compliance_decision_id,
    }


async def close_open_calls(store: CrmStore, records: RecordSink, *, before: datetime) -> list[Call]:
    """Close every call row a dead controller left open, with an outcome: the calls requested
    `before` this controller started (its own calls are never touched, however early they come);
    the calls closed, for the slices to follow up."""
    now = datetime.now(UTC)
    closed: list[Call] = []
    for call in await store.list_open_calls():
        if call.requested_at >= before:
            continue
        await records.put(RecordKind.CALL, _closed_call(call, now))
        closed.append(call)
    return closed


async def outbox_delivered(state_dir: Path, name: str, kind: RecordKind, *, within: float = 30.0,
                           poll: float = 0.2) -> None:
    """Wait until the records of `kind` pending in the outbox `name` now (those a dead process
    left, delivered by this one at start) have reached PostgreSQL, so a CRM row read next is
    the latest the dead process kept (a text's `sending` row may still be only there);
    `TimeoutError` when PostgreSQL does not take them `within` seconds."""
    def pending_ids() -> set[tuple[str, object]]:
        key = KEY_FIELD[kind]
        return {(str(record[key]), record.get("version")) for record in pending_records(state_dir, kind, name)}

    waiting = await asyncio.to_thread(pending_ids)
    async with asyncio.timeout(within):
        while waiting:
            await asyncio.sleep(poll)
            waiting &= await asyncio.to_thread(pending_ids)


def closed_outcome(call: Call) -> str:
    """The outcome a call row closed at start was given."""
    return "answered" if call.bridged_at else "failed"


async def restore_opt_outs(store: CrmStore, dnc: DncStore, *, page: int = 10000, state_dir: Path | None = None,
                           outboxes: Sequence[str] = ()) -> int:
    """Put every number of the CRM's `opt_outs` rows on the Redis opt-out list (idempotent);
    first those of opt-outs still pending in the local `outboxes` under `state_dir`: kept
    durably but not in PostgreSQL yet, they were lost to the list when Redis lost it too (or
    the process was killed between the outbox write and the list)."""
    restored, after = 0, ""
    for name in outboxes:
        if state_dir is None:
            break
        for record in await asyncio.to_thread(pending_records, state_dir, RecordKind.OPT_OUT, name):
            await block(dnc, str(record["phone"]))
            restored += 1
    while True:
        phones = await store.opted_out_phones(after=after, limit=page)
        if not phones:
            return restored
        for phone in phones:
            await block(dnc, phone)
        restored += len(phones)
        after = phones[-1]
