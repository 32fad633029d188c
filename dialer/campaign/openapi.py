"""The typed bodies of the campaign endpoints (the OpenAPI document is generated from them)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import Field

from crm_bridge.records import DialMode
from dialer.api.schema import Id, Line, Name, PhoneText, RequestModel, ResponseModel, UtcTime, utc_from_epoch
from dialer.campaign.agent import AgentSnapshot, AgentState
from dialer.campaign.dialing import CampaignStatus
from dialer.campaign.intake import IntakeError, parse_web_lead


class LoginRequest(RequestModel):
    campaign_ids: list[Id] = Field(min_length=1, max_length=100, description="the campaigns the agent takes calls of")


class PauseRequest(RequestModel):
    reason: Name = Field(max_length=100, description="a short text, e.g. 'lunch'")


class AgentStateBody(ResponseModel):
    """An agent's session state (also the `agent_state` message of the event streams)."""

    type: Literal["agent_state"] = "agent_state"
    agent_id: str
    state: AgentState
    since: UtcTime = Field(description="when the agent entered this state")
    version: int = Field(description="grows with every change")
    campaign_ids: list[str]
    channel_id: str = Field(description="the agent's nailed-up leg")
    call_id: str | None
    pause_reason: str | None
    wrap_up_until: UtcTime | None = Field(description="when wrap-up ends by itself")
    logout_reason: str | None

    @classmethod
    def of(cls, snapshot: AgentSnapshot) -> AgentStateBody:
        """At the edge: the pure machine keeps epoch seconds, bodies carry ISO-8601 UTC."""
        return cls(agent_id=snapshot.agent_id, state=snapshot.state, since=utc_from_epoch(snapshot.since),
                   version=snapshot.version, campaign_ids=list(snapshot.campaign_ids), channel_id=snapshot.channel_id,
                   call_id=snapshot.call_id, pause_reason=snapshot.pause_reason,
                   wrap_up_until=utc_from_epoch(snapshot.wrap_up_until), logout_reason=snapshot.logout_reason)


class AgentCampaign(ResponseModel):
    """A campaign as an agent's console needs it to offer a login: no settings, no figures."""

    campaign_id: str
    name: str
    dial_mode: DialMode
    status: Literal["running", "paused", "stopped"] = Field(
        description="on this controller: dialing, paused by a supervisor, or not dialing (an agent may log in "
                    "to it all the same, and takes its calls once it starts)")


class AgentCampaigns(ResponseModel):
    campaigns: list[AgentCampaign] = Field(description="the active campaigns, by id (at most 1000)")
    next: str | None = Field(description="always null")


class CampaignStatusBody(ResponseModel):
    """A campaign's figures on this controller."""

    campaign_id: str
    running: bool
    dial_mode: str
    pacer: str
    hopper: int = Field(description="leads ready to dial")
    lines: int = Field(description="lines ringing now")
    waiting: int = Field(description="answered people waiting for an agent")
    agents: dict[str, int] = Field(description="agents by state")
    counters: dict[str, int] = Field(description="dials and outcomes since start")
    blocked: dict[str, int] = Field(description="today's gate blocks by reason (the agency's local day, from the stored "
                                                     "decisions)")
    abandon_rate: float = Field(description="30-day abandon rate (47 CFR 64.1200(a)(7))")
    live_answers: int
    abandoned: int
    paused: bool = Field(default=False, description="a supervisor paused dialing (the calls up finish)")

    @classmethod
    def of(cls, status: CampaignStatus) -> CampaignStatusBody:
        return cls.model_validate(asdict(status))


class WebLeadRequest(RequestModel):
    """A web lead; every field is one line of text (no control characters)."""

    first_name: Name
    last_name: Name | None = None
    phone: PhoneText = Field(description="a US number, any format")
    email: Line | None = None
    state: Line | None = Field(default=None, description="two-letter US state code")
    zip: Line | None = Field(default=None, description="12345 or 12345-6789")
    address_line1: Name | None = None
    city: Name | None = None
    source: Name = Field(description="where the lead comes from (web_form, a vendor's name, ...)")
    campaign_id: Id | None = Field(default=None, description="with speed-to-lead on, the lead is dialed first")

    def idempotency_form(self) -> dict[str, Any]:
        """The lead as the intake reads it (phone in E.164, e-mail in lower case, state in capitals,
        spaces trimmed): a retry that writes one of them another way is the same lead."""
        try:
            return asdict(parse_web_lead(self.model_dump(exclude_none=True)))
        except IntakeError:  # refused by the route anyway: compared as sent
            return super().idempotency_form()


class LeadAccepted(ResponseModel):
    lead_id: str
    merged: bool = Field(description="merged into a lead the CRM knew (same phone or e-mail)")
    conflicts: list[str] = Field(description="fields whose value differed and was kept out (for review)")
    needs_review: bool
    speed_to_lead: bool = Field(description="put at the head of the campaign's hopper")
    received_at: UtcTime
