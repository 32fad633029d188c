"""Agent dispositions and the pipeline stage moves they cause. Pure: no IO, no clock.

The pipeline follows the agency's CRM (seed 000): New Lead -> Contacted -> Appt Set ->
Appt Held -> App Pending -> Issued, with Lost and Nurture outside the forward line.

Rules:
- A disposition never moves a lead backwards along the forward line. A lead that has an
  appointment and is then not reached stays at Appt Set.
- Only an explicit Lost / Nurture disposition (or do-not-call, which ends the relationship on
  the phone) takes a lead out of the line, from any stage except Issued: a placed policy is not
  undone by a phone call (chargebacks come from the carrier, not the dialer).
- A lead in Lost or Nurture re-enters the line when a disposition shows progress (contacted,
  appointment, ...); a mere no-answer leaves it where it is.
- Do-not-call always yields an opt-out, whatever the stage (47 CFR 64.1200(d)(3): a company
  must honor a do-not-call request; the gate blocks every channel at once).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from crm_bridge.kinds import RecordKind


class PipelineStage(StrEnum):
    """Persisted in `leads.pipeline_stage` (see `pipeline_stages`)."""

    NEW_LEAD = "new_lead"
    CONTACTED = "contacted"
    APPT_SET = "appt_set"
    APPT_HELD = "appt_held"
    APP_PENDING = "app_pending"
    ISSUED = "issued"
    LOST = "lost"
    NURTURE = "nurture"


# Position along the forward line; Lost and Nurture are outside it.
FORWARD_LINE: tuple[PipelineStage, ...] = (
    PipelineStage.NEW_LEAD,
    PipelineStage.CONTACTED,
    PipelineStage.APPT_SET,
    PipelineStage.APPT_HELD,
    PipelineStage.APP_PENDING,
    PipelineStage.ISSUED,
)
OFF_LINE: frozenset[PipelineStage] = frozenset({PipelineStage.LOST, PipelineStage.NURTURE})

STAGE_LABELS: dict[PipelineStage, str] = {
    PipelineStage.NEW_LEAD: "New Lead",
    PipelineStage.CONTACTED: "Contacted",
    PipelineStage.APPT_SET: "Appt Set",
    PipelineStage.APPT_HELD: "Appt Held",
    PipelineStage.APP_PENDING: "App Pending",
    PipelineStage.ISSUED: "Issued",
    PipelineStage.LOST: "Lost",
    PipelineStage.NURTURE: "Nurture",
}


class DispositionCode(StrEnum):
    """What the agent records at wrap-up. Persisted in `dispositions.code`."""

    NO_ANSWER = "no_answer"
    BUSY = "busy"
    ANSWERING_MACHINE = "answering_machine"
    LEFT_VOICEMAIL = "left_voicemail"
    WRONG_NUMBER = "wrong_number"
    DISCONNECTED_NUMBER = "disconnected_number"
    CONTACTED = "contacted"
    CALLBACK = "callback"
    NOT_INTERESTED = "not_interested"
    APPOINTMENT_SET = "appointment_set"
    APPOINTMENT_HELD = "appointment_held"
    SALE = "sale"
    POLICY_ISSUED = "policy_issued"
    NURTURE = "nurture"
    LOST = "lost"
    DO_NOT_CALL = "do_not_call"


class DispositionError(ValueError):
    """A disposition that cannot be applied as given (e.g. a callback without a time)."""


# Where each disposition would take the lead if nothing else held it back. None: stays.
_TARGET: dict[DispositionCode, PipelineStage | None] = {
    DispositionCode.NO_ANSWER: None,
    DispositionCode.BUSY: None,
    DispositionCode.ANSWERING_MACHINE: None,
    DispositionCode.LEFT_VOICEMAIL: None,
    # The person reached is not the lead: nothing is learnt about the lead itself.
    DispositionCode.WRONG_NUMBER: None,
    DispositionCode.DISCONNECTED_NUMBER: None,
    DispositionCode.CONTACTED: PipelineStage.CONTACTED,
    DispositionCode.CALLBACK: PipelineStage.CONTACTED,
    # Not interested now: keep in long-term nurture (seed 000, "Long-Term Nurture"), not Lost.
    DispositionCode.NOT_INTERESTED: PipelineStage.NURTURE,
    DispositionCode.APPOINTMENT_SET: PipelineStage.APPT_SET,
    DispositionCode.APPOINTMENT_HELD: PipelineStage.APPT_HELD,
    # A sale is an application written; Issued comes when the carrier issues the policy.
    DispositionCode.SALE: PipelineStage.APP_PENDING,
    DispositionCode.POLICY_ISSUED: PipelineStage.ISSUED,
    DispositionCode.NURTURE: PipelineStage.NURTURE,
    DispositionCode.LOST: PipelineStage.LOST,
    DispositionCode.DO_NOT_CALL: PipelineStage.LOST,
}

# Dispositions that mean a conversation with the lead took place (the "Contacts" KPI).
_CONTACTS: frozenset[DispositionCode] = frozenset({
    DispositionCode.CONTACTED,
    DispositionCode.CALLBACK,
    DispositionCode.NOT_INTERESTED,
    DispositionCode.APPOINTMENT_SET,
    DispositionCode.APPOINTMENT_HELD,
    DispositionCode.SALE,
    DispositionCode.POLICY_ISSUED,
    DispositionCode.NURTURE,
    DispositionCode.LOST,
    DispositionCode.DO_NOT_CALL,
})



def contact_codes() -> frozenset[DispositionCode]:
    """The dispositions that mean a conversation with the lead took place (the Contacts KPI)."""
    return _CONTACTS


_REVIEW_REASONS: dict[DispositionCode, str] = {
    DispositionCode.WRONG_NUMBER: "wrong number reported by the agent",
    DispositionCode.DISCONNECTED_NUMBER: "disconnected number reported by the agent",
}

# Dispositions that may carry a time: a callback must, an appointment may.
_TIME_REQUIRED: frozenset[DispositionCode] = frozenset({DispositionCode.CALLBACK})
_TIME_ALLOWED: frozenset[DispositionCode] = _TIME_REQUIRED | {DispositionCode.APPOINTMENT_SET}


@dataclass(frozen=True)
class DispositionOutcome:
    """What a disposition does to the lead.

    `stage_after` equals `stage_before` when the lead does not move. `opt_out` is True for
    do-not-call: the caller must record an opt-out for the dialed number. `review_reason` is set
    when the lead's data needs a person (a wrong or dead number).
    """

    code: DispositionCode
    stage_before: PipelineStage
    stage_after: PipelineStage
    opt_out: bool
    callback_at: datetime | None
    counts_as_contact: bool
    review_reason: str | None

    @property
    def moved(self) -> bool:
        return self.stage_after != self.stage_before


def parse_code(value: str) -> DispositionCode:
    """The code for `value`, or a `DispositionError` listing the valid ones."""
    try:
        return DispositionCode(value)
    except ValueError:
        valid = ", ".join(code.value for code in DispositionCode)
        raise DispositionError(f"unknown disposition {value!r}; expected one of: {valid}") from None


def next_stage(current: PipelineStage, code: DispositionCode) -> PipelineStage:
    """The stage a lead at `current` moves to after `code` (may be `current`)."""
    target = _TARGET[code]
    if target is None or target == current:
        return current
    if current is PipelineStage.ISSUED:
        # Nothing a call can say un-issues a policy.
        return current
    if target in OFF_LINE:
        return target
    if current in OFF_LINE:
        # Re-engagement: a lead out of the line comes back at the stage the call shows.
        return target
    if FORWARD_LINE.index(target) > FORWARD_LINE.index(current):
        return target
    return current


def decide(
    current: PipelineStage, code: DispositionCode, callback_at: datetime | None = None
) -> DispositionOutcome:
    """Apply the rules above; raises `DispositionError` for an invalid callback time.

    `callback_at` must be timezone-aware (a naive time is ambiguous across the lead's zones).
    """
    if code in _TIME_REQUIRED and callback_at is None:
        raise DispositionError(f"disposition {code.value!r} needs callback_at (when to call back)")
    if callback_at is not None:
        if code not in _TIME_ALLOWED:
            raise DispositionError(f"disposition {code.value!r} does not take a callback_at")
        if callback_at.tzinfo is None or callback_at.utcoffset() is None:
            raise DispositionError("callback_at must include a UTC offset")
    return DispositionOutcome(
        code=code,
        stage_before=current,
        stage_after=next_stage(current, code),
        opt_out=code is DispositionCode.DO_NOT_CALL,
        callback_at=callback_at,
        counts_as_contact=code in _CONTACTS,
        review_reason=_REVIEW_REASONS.get(code),
    )


# Namespace for opt-out ids derived from a disposition id, so a retried wrap-up yields the same id.
_OPT_OUT_NAMESPACE = uuid.UUID("5d0c7f62-52b8-4c1e-9d1e-2f7c1c7e0a11")


def wrap_up_records(
    *,
    disposition_id: str,
    code: DispositionCode | str,
    disposed_at: datetime,
    call_id: str | None,
    lead_id: str | None,
    agent_id: str | None,
    campaign_id: str | None = None,
    phone: str | None = None,
    notes: str | None = None,
    callback_at: datetime | None = None,
) -> list[tuple[str, dict[str, object]]]:
    """The outbox records for an agent's wrap-up: the disposition and, for do-not-call, the
    opt-out of `phone`. Put them together with `Outbox.put_many` so both or neither are stored.

    The pipeline move itself is decided when the disposition is applied, against the lead's
    stage at that moment. Raises `DispositionError` for a do-not-call without a phone number.
    """
    code = code if isinstance(code, DispositionCode) else parse_code(code)
    # Check the callback rules now so the agent hears about a mistake at once.
    decide(PipelineStage.NEW_LEAD, code, callback_at)
    records: list[tuple[str, dict[str, object]]] = [
        (RecordKind.DISPOSITION,
            {
                "disposition_id": disposition_id,
                "call_id": call_id,
                "lead_id": lead_id,
                "agent_id": agent_id,
                "campaign_id": campaign_id,
                "code": code.value,
                "notes": notes,
                "callback_at": callback_at,
                "disposed_at": disposed_at,
            },
        )
    ]
    if code is DispositionCode.DO_NOT_CALL:
        if not phone:
            raise DispositionError("a do-not-call disposition needs the phone number to opt out")
        records.append(
            (RecordKind.OPT_OUT,
                {
                    "opt_out_id": str(uuid.uuid5(_OPT_OUT_NAMESPACE, disposition_id)),
                    "phone": phone,
                    "source": "agent_disposition",
                    "lead_id": lead_id,
                    "call_id": call_id,
                    "created_at": disposed_at,
                },
            )
        )
    return records
