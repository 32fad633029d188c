"""The kinds of record the outbox carries to the CRM tables (one place, typed)."""

from __future__ import annotations

from enum import StrEnum


class RecordKind(StrEnum):
    """Kinds of outbox record; persisted in the outbox and in `outbox_applied.kind`."""

    CALL = "call"
    DISPOSITION = "disposition"
    OPT_OUT = "opt_out"
    COMPLIANCE_DECISION = "compliance_decision"
    RECORDING = "recording"
    LEAD_UPSERT = "lead_upsert"
    AGENT_UPSERT = "agent_upsert"
    CAMPAIGN_UPSERT = "campaign_upsert"
    CAMPAIGN_LEAD = "campaign_lead"
    MONITOR_SESSION = "monitor_session"
    RECORDING_ACCESS = "recording_access"
    MESSAGE = "message"
    MESSAGE_RECEIPT = "message_receipt"
    MESSAGE_TEMPLATE = "message_template"
    OPT_IN = "opt_in"
    EVIDENCE_PACKET = "evidence_packet"
    AGENT_STATE = "agent_state"
    CAMPAIGN_CHANGE = "campaign_change"
    CAMPAIGN_SETTINGS = "campaign_settings"
