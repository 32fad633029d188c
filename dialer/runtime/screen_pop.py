"""The agent's screen pop: the one message, whatever the kind of call, that tells an agent's
console which lead is coming (published on the agent's event stream before the lead is heard)."""

from __future__ import annotations

from crm_bridge.store import Lead


def lead_name(lead: Lead | None, phone: str) -> str:
    """How the agent's phone and console name the lead (the number when the CRM has no name)."""
    if lead is None:
        return phone
    return " ".join(part for part in (lead.first_name, lead.last_name) if part) or phone


def screen_pop(
    *, call_id: str, campaign_id: str | None, lead_id: str, phone: str, lead: Lead | None
) -> dict[str, object]:
    return {
        "type": "screen_pop",
        "call_id": call_id,
        "campaign_id": campaign_id,
        "lead": {
            "lead_id": lead_id,
            "name": lead_name(lead, phone),
            "phone": phone,
            "state": lead.state if lead else None,
            "zip": lead.zip if lead else None,
            "pipeline_stage": lead.pipeline_stage.value if lead else None,
            "email": lead.email if lead else None,
            # What the console shows at once, before it has read the lead's full record.
            "phones": list(lead.phones) if lead else [phone],
            "address": ", ".join(part for part in (lead.address_line1, lead.address_line2, lead.city)
                                 if part) or None if lead else None,
            "timezone_hint": lead.timezone_hint if lead else None,
        },
    }
