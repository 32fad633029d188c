"""The gate's vocabulary: requests, consent records, reasons and decisions (plain values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

# The states, DC and the territories with US (+1) numbers: a state list is one of these.
US_STATE_CODES = frozenset(
    "AK AL AR AZ CA CO CT DC DE FL GA HI IA ID IL IN KS KY LA MA MD ME MI MN MO MS MT NC ND NE NH NJ NM NV NY "
    "OH OK OR PA RI SC SD TN TX UT VA VT WA WI WV WY AS GU MP PR VI".split()
)


class ReasonCode(StrEnum):
    """Stable, machine-readable reasons a contact is blocked (persisted in the audit table)."""

    INVALID_NUMBER = "invalid_number"
    UNKNOWN_LOCATION = "unknown_location"
    DNC_FEDERAL = "dnc_federal"
    DNC_STATE = "dnc_state"
    DNC_INTERNAL = "dnc_internal"
    LITIGATOR = "litigator"
    OPTED_OUT = "opted_out"
    OUTSIDE_CALLING_WINDOW = "outside_calling_window"
    STATE_HOLIDAY = "state_holiday"
    FREQUENCY_CAP = "frequency_cap"
    CONSENT_MISSING = "consent_missing"
    REGISTRY_STALE = "registry_stale"
    GATE_UNAVAILABLE = "gate_unavailable"


class NoticeCode(StrEnum):
    """Duties that come with an allowed contact (they never block it), or why rules were not applied."""

    RECORDING_DISCLOSURE = "recording_disclosure"
    # A text the consumer asked for (the answer to HELP, the confirmation of a revocation): the
    # lists, windows, caps and consent rules of solicitations do not apply; the notice says why.
    SERVICE_TEXT = "service_text"


class Channel(StrEnum):
    VOICE = "voice"
    SMS = "sms"


class TextKind(StrEnum):
    """What an outbound text is; the gate applies different rules to each (channel `sms`)."""

    # Sent by the system to promote: prior express written consent on file, 47 CFR 64.1200(a)(2).
    MARKETING = "marketing"
    # A reply within a conversation the lead started: not marketing, so no consent rule; the
    # lists, windows and registry freshness still apply.
    CONVERSATION = "conversation"
    # The answer to HELP (the agency's name and contact), asked for by the consumer.
    HELP_REPLY = "help_reply"
    # The one confirmation of a revocation, within 5 minutes, no marketing: 47 CFR 64.1200(a)(12).
    OPT_OUT_CONFIRMATION = "opt_out_confirmation"

    @property
    def service(self) -> bool:
        """A text the consumer asked for, not a solicitation."""
        return self in (TextKind.HELP_REPLY, TextKind.OPT_OUT_CONFIRMATION)


class DialMode(StrEnum):
    PREDICTIVE = "predictive"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREVIEW = "preview"
    MANUAL = "manual"

    @property
    def automated(self) -> bool:
        """Whether the system selects or dials the number ("automated system for the selection or
        dialing of telephone numbers", Fla. Stat. 501.059(8)(a); 15 O.S. 775C.3; Md. Com. Law 14-4503)."""
        return self in (DialMode.PREDICTIVE, DialMode.PROGRESSIVE, DialMode.POWER)


class Purpose(StrEnum):
    TELEMARKETING = "telemarketing"
    MEDICARE_MARKETING = "medicare_marketing"
    CALLBACK = "callback"


class ConsentKind(StrEnum):
    PEWC = "pewc"  # prior express written consent, 47 CFR 64.1200(f)(9)
    PTC = "ptc"  # Medicare permission to contact, 42 CFR 422.2264


@dataclass(frozen=True)
class ConsentRecord:
    """One consent on file for the lead (from the CRM)."""

    kind: ConsentKind
    obtained_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    scope: str | None = None  # e.g. the product a PTC was given for; None = any

    def valid_at(self, now: datetime) -> bool:
        if self.obtained_at > now:
            return False
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class ContactRequest:
    """"May we contact this number now?" for one lead."""

    phone: str
    lead_id: str | None = None
    zip_code: str | None = None
    state: str | None = None
    consents: tuple[ConsentRecord, ...] = ()
    channel: Channel = Channel.VOICE
    dial_mode: DialMode | None = None  # overrides the campaign's mode (click-to-call = manual)
    text_kind: TextKind | None = None  # channel sms: what the text is (None: marketing, the strictest)

    @property
    def kind_of_text(self) -> TextKind | None:
        """The text's kind for the rules (marketing unless said otherwise); None for a call."""
        if self.channel is not Channel.SMS:
            return None
        return self.text_kind or TextKind.MARKETING

    @property
    def counts_toward_caps(self) -> bool:
        """Whether this contact takes a slot of the frequency caps: every call and every
        marketing text (state caps count "calls or texts", e.g. Md. Code, Com. Law 14-4503);
        not a reply in a conversation the lead started, nor a text the consumer asked for."""
        kind = self.kind_of_text
        return kind is None or kind is TextKind.MARKETING


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str
    citation: str

    def to_record(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message, "citation": self.citation}


@dataclass(frozen=True)
class Notice:
    """Something the call must do when it connects, e.g. announce the recording."""

    code: NoticeCode
    message: str
    citation: str

    def to_record(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message, "citation": self.citation}


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one request; `allowed` is True only with no reasons at all."""

    decision_id: str
    decided_at: datetime
    phone: str
    lead_id: str | None
    campaign_id: str | None
    purpose: str
    reasons: tuple[Reason, ...]
    timezones: tuple[str, ...] = ()
    local_times: tuple[str, ...] = ()
    data_versions: Mapping[str, str] = field(default_factory=dict)
    # Set when the lead may be contacted only by a person dialing by hand (state consent rules).
    required_dial_mode: DialMode | None = None
    notices: tuple[Notice, ...] = ()
    channel: Channel = Channel.VOICE
    text_kind: TextKind | None = None

    @property
    def allowed(self) -> bool:
        return not self.reasons

    @property
    def codes(self) -> tuple[ReasonCode, ...]:
        return tuple(reason.code for reason in self.reasons)

    @property
    def recording_disclosure(self) -> bool:
        """Whether the call must announce that it is recorded (an all-party-consent state)."""
        return any(notice.code is NoticeCode.RECORDING_DISCLOSURE for notice in self.notices)

    def blocked_because(self, reason: Reason) -> Decision:
        """This decision with one more reason (used to fail closed after the rules ran)."""
        return replace(self, reasons=(*self.reasons, reason))

    def to_record(self) -> dict[str, Any]:
        """The audit row (the `compliance_decisions` table's columns), JSON-serialisable."""
        return {
            "decision_id": self.decision_id,
            "decided_at": self.decided_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "phone": self.phone,
            "lead_id": self.lead_id,
            "campaign_id": self.campaign_id,
            "purpose": self.purpose,
            "allowed": self.allowed,
            "reasons": [reason.to_record() for reason in self.reasons],
            "timezones": list(self.timezones),
            "local_times": list(self.local_times),
            "data_versions": dict(self.data_versions),
            "notices": [notice.to_record() for notice in self.notices],
            "channel": self.channel.value,
            "text_kind": self.text_kind.value if self.text_kind else None,
        }


@dataclass(frozen=True)
class NumberFacts:
    """What the Redis lists say about one number, fetched just before deciding."""

    hits: frozenset[str] = frozenset()  # list names containing the number ("federal", "state:FL", ...)
    attempts: tuple[datetime, ...] = ()  # recent attempts to this person on this subject


@dataclass(frozen=True)
class ListVersions:
    """Dates of the list copies loaded (list name -> YYYY-MM-DD)."""

    dates: Mapping[str, str] = field(default_factory=dict)
