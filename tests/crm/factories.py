"""Valid records of every outbox kind, for tests (override any field with keywords)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def call(call_id: str | None = None, version: int = 1, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "call_id": str(uuid.uuid4()) if call_id is None else call_id,
        "version": version,
        "direction": "outbound",
        "lead_id": "lead-1",
        "agent_id": "agent-1001",
        "campaign_id": "camp-1",
        "lead_number": "+14045550123",
        "caller_id": "+14045550100",
        "requested_at": T0,
    }
    record.update(fields)
    return record


def ended_call(call_id: str, version: int = 9) -> dict[str, Any]:
    return call(
        call_id,
        version,
        agent_answered_at=T0 + timedelta(seconds=3),
        lead_ringing_at=T0 + timedelta(seconds=4),
        lead_answered_at=T0 + timedelta(seconds=12),
        bridged_at=T0 + timedelta(seconds=12),
        ended_at=T0 + timedelta(seconds=200),
        outcome="answered",
        hangup_cause=16,
        hangup_cause_text="Normal Clearing",
        sip_code=200,
        ring_seconds=8.0,
        talk_seconds=188.0,
        total_seconds=200.0,
        amd_result="HUMAN",
    )


def opt_out(phone: str = "+14045550123", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "opt_out_id": str(uuid.uuid4()),
        "phone": phone,
        "source": "crm_api",
        "created_at": T0,
    }
    record.update(fields)
    return record


def decision(**fields: Any) -> dict[str, Any]:
    """Shaped exactly like the compliance gate's decision dict."""
    record: dict[str, Any] = {
        "decision_id": str(uuid.uuid4()),
        "decided_at": "2026-11-23T15:00:00+00:00",
        "phone": "+14045550123",
        "lead_id": "lead-1",
        "campaign_id": "camp-1",
        "purpose": "telemarketing",
        "allowed": False,
        "reasons": [
            {"code": "outside_calling_window", "message": "07:40 local is before 08:00",
             "citation": "47 CFR 64.1200(c)(1)"}
        ],
        "timezones": ["America/New_York"],
        "local_times": ["2026-11-23T07:40:00-05:00"],
        "data_versions": {"dnc": "2026-11-20", "rules": "3"},
    }
    record.update(fields)
    return record


def disposition(code: str, lead_id: str = "lead-1", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "disposition_id": str(uuid.uuid4()),
        "call_id": "call-1",
        "lead_id": lead_id,
        "agent_id": "agent-1001",
        "code": code,
        "disposed_at": T0 + timedelta(minutes=5),
    }
    record.update(fields)
    return record


def recording(call_id: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "recording_id": str(uuid.uuid4()),
        "call_id": call_id,
        "lead_id": "lead-1",
        "storage_uri": "file:///var/lib/dialer/recordings/x.opus.enc",
        "format": "opus",
        "duration_seconds": 200.0,
        "size_bytes": 123456,
        "sha256": "a" * 64,
        "recorded_at": T0,
    }
    record.update(fields)
    return record


def lead(lead_id: str = "lead-1", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "lead_id": lead_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "phones": ["+14045550123"],
        "state": "GA",
        "zip": "30301",
        "source": "web_form",
        "consents": [
            {"consent_id": f"{lead_id}-pewc", "kind": "pewc", "phone": "+14045550123",
             "obtained_at": T0 - timedelta(days=1), "source": "web_form", "evidence_ref": "s3://forms/1"}
        ],
    }
    record.update(fields)
    return record


def agent(agent_id: str = "agent-1001", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"agent_id": agent_id, "name": "Grace", "sip_endpoint": "PJSIP/agent1001"}
    record.update(fields)
    return record


def campaign(campaign_id: str = "camp-1", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "campaign_id": campaign_id,
        "name": "Medicare AEP",
        "caller_id": "+14045550100",
        "window_start": "09:00",
        "window_end": "20:00",
        "dial_mode": "predictive",
        "required_consents": ["pewc"],
        "seller_name": "Acme Insurance",
        "dnc_callback_number": "+14045550199",
    }
    record.update(fields)
    return record
