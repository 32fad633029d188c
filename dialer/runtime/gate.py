"""How the controller uses the compliance gate: CRM campaigns and leads in, settings to options.

(Audit rows go to the CRM through `compliance_rules.audit.OutboxAuditSink`.)
"""

from __future__ import annotations

from collections.abc import Mapping

from compliance_rules.model import ConsentKind, ConsentRecord, ContactRequest, DialMode, Purpose
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import GateOptions
from compliance_rules.ruleset import RuleDataError, parse_hours
from crm_bridge.store import Campaign, Lead
from dialer.settings import Settings

# CRM consent kinds (consent_records.kind) -> the gate's.
CONSENT_KINDS: Mapping[str, ConsentKind] = {
    "pewc": ConsentKind.PEWC,
    "ptc": ConsentKind.PTC,
    "ptc_medicare": ConsentKind.PTC,
}


def gate_options(settings: Settings) -> GateOptions:
    """The agency-wide gate switches from the settings."""
    return GateOptions(
        include_low_confidence=settings.gate_include_low_confidence,
        flags=frozenset(flag.strip() for flag in settings.gate_flags.split(",") if flag.strip()),
        require_state_dnc_lists=settings.gate_require_state_lists,
    )


def policy_for_campaign(campaign: Campaign | None, *, dial_mode: DialMode | None = None) -> CampaignPolicy:
    """The gate's policy for a CRM campaign (None: an ad-hoc call under the law's defaults)."""
    if campaign is None:
        return CampaignPolicy(dial_mode=dial_mode or DialMode.MANUAL)
    try:
        purpose = Purpose(campaign.purpose)
    except ValueError:
        purpose = Purpose.TELEMARKETING  # unknown purposes get the strictest ordinary treatment
    window = None
    if campaign.window_start is not None and campaign.window_end is not None:
        day = [[campaign.window_start.strftime("%H:%M"), campaign.window_end.strftime("%H:%M")]]
        try:
            window = parse_hours({name: day for name in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, "window")
        except RuleDataError:
            window = None
    required = {kind.lower() for kind in campaign.required_consents}
    return CampaignPolicy(
        campaign_id=campaign.campaign_id,
        purpose=purpose,
        dial_mode=dial_mode or DialMode(campaign.dial_mode.value),
        window=window,
        require_pewc="pewc" in required,
        require_ptc=bool(required & {"ptc", "ptc_medicare"}),
    )


def contact_request(
    phone: str, lead: Lead | None, *, dial_mode: DialMode | None = None
) -> ContactRequest:
    """What the gate needs to know about the lead behind `phone`."""
    if lead is None:
        return ContactRequest(phone=phone, dial_mode=dial_mode)
    consents = tuple(
        ConsentRecord(
            kind=CONSENT_KINDS[consent.kind.lower()],
            obtained_at=consent.obtained_at,
            revoked_at=consent.revoked_at,
            expires_at=consent.expires_at,
        )
        for consent in lead.consents
        if consent.kind.lower() in CONSENT_KINDS and (consent.phone is None or consent.phone == phone)
    )
    return ContactRequest(
        phone=phone,
        lead_id=lead.lead_id,
        zip_code=lead.zip,
        state=lead.state,
        consents=consents,
        dial_mode=dial_mode,
    )
