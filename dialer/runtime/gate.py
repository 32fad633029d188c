"""How the runtime uses the compliance gate: CRM campaigns and leads in, policies out; the
check at the instant of dialing and its retry policy; decisions audited into the CRM.

Every kind of call asks the gate twice: when the work is taken (a click-to-call request, a
lead entering the hopper) and again immediately before the lead is dialed (`decide_at_dial`,
which takes a frequency-cap slot). The second check is the one the rules are about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from compliance_rules.gate import ComplianceGate
from compliance_rules.model import (
    ConsentKind,
    ConsentRecord,
    ContactRequest,
    Decision,
    DialMode,
    Purpose,
    ReasonCode,
)
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import GateOptions
from compliance_rules.ruleset import RuleDataError, parse_hours
from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import RecordSink
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


# A gate that could not decide (Redis slow under load) blocks; asking once more, still within
# the call's decision budget, stays fail-closed if it fails again.
DIAL_CHECK_ATTEMPTS = 2


async def decide_at_dial(
    gate: ComplianceGate, request: ContactRequest, policy: CampaignPolicy, log: Any, *, reserve_attempt: bool = True
) -> Decision | None:
    """The gate's decision immediately before the lead is dialed, taking a frequency-cap slot;
    asked again once when the gate could not decide. None when asking failed outright (the
    caller blocks: fail closed). A retry of the same call on another trunk asks again without
    taking a second slot (`reserve_attempt=False`): the call already holds one."""
    decision: Decision | None = None
    try:
        for attempt in range(DIAL_CHECK_ATTEMPTS):
            decision = await gate.decide(request, policy, reserve_attempt=reserve_attempt)
            if decision.allowed or set(decision.codes) != {ReasonCode.GATE_UNAVAILABLE}:
                break
            log.warning("gate_dial_check_undecided", attempt=attempt + 1)
    except Exception as error:  # fail closed
        log.error("gate_dial_check_failed", error=repr(error))
        return None
    return decision


class OutboxAuditSink:
    """Each batch of decisions goes to the CRM's `compliance_decisions` table through the
    outbox, in one durable write, before the gate reports any of them."""

    def __init__(self, records: RecordSink) -> None:
        self._records = records

    async def record(self, decisions: Sequence[Decision]) -> None:
        if decisions:
            await self._records.put_many([(RecordKind.COMPLIANCE_DECISION, d.to_record()) for d in decisions])
