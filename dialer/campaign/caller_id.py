"""May a campaign send this caller ID? The one check, for every way a campaign is created,
changed or started. Pure: no IO.

16 CFR 310.4(a)(8) (the Telemarketing Sales Rule) requires every telemarketing call to transmit
a caller ID number that the seller or telemarketer answers during regular business hours (47 CFR
64.1601(e) says the same for the FCC): a withheld, made-up or unanswerable number breaks the rule,
and carriers sign calls for STIR/SHAKEN with full attestation only for numbers assigned to the
account. So a campaign's caller ID must be:

1. given (a campaign without one sends the deployment's default, checked the same way);
2. a real US number in E.164 (+1NPANXXXXXX), not withheld (`anonymous`, `restricted`, ...) and of
   a type a person can call back (not a premium-rate or other non-dialable number);
3. one of the agency's own numbers (`[[caller_ids]]` in the settings), recorded with its owner,
   who vouched for it and when; the answer names that record, so whoever configures the campaign
   sees who vouched.

Rule 3 applies in production, and in development as soon as caller IDs are configured (a
development setup without any sends whatever well-formed number the simulated network is given).

Used by `POST /v1/campaigns/{id}/start` (a campaign with an unusable caller ID is refused before
it dials), `dialer config check` and `dialer serve`'s start (every campaign in the CRM), and by the
campaign administration API when it creates or changes a campaign: call `check_caller_id` and
answer 422 with `code` and `message` when `ok` is false.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from compliance_rules.numbers import parse_number
from dialer.provision.trunks import WITHHELD, CallerIdRecord


class CallerIdCode(enum.StrEnum):
    """Machine-readable reasons a caller ID is refused (the problem's `error` in the API)."""

    MISSING = "caller_id_missing"
    WITHHELD = "caller_id_withheld"
    INVALID = "caller_id_invalid"
    NOT_VOUCHED = "caller_id_not_vouched"
    VOUCHING_INCOMPLETE = "caller_id_vouching_incomplete"


@dataclass(frozen=True)
class CallerIdCheck:
    """The verdict on one caller ID: `ok`, or a `code` and one sentence saying what to do.
    `vouched` is the agency's record of the number (owner, who vouched and when) when known."""

    number: str
    code: CallerIdCode | None = None
    message: str = ""
    vouched: CallerIdRecord | None = None

    @property
    def ok(self) -> bool:
        return self.code is None

    def describe(self) -> str:
        """For logs and API answers: the problem, or who vouched for the number."""
        if not self.ok:
            return self.message
        if self.vouched is None:
            return f"{self.number}: well-formed (no agency caller IDs are configured in development)"
        record = self.vouched
        when = record.vouched_on.isoformat() if record.vouched_on else "an unknown date"
        return f"{self.number}: owned by {record.owner}, vouched for by {record.vouched_by} on {when}"


def check_caller_id(number: str | None, vouched: Sequence[CallerIdRecord], *, require_vouched: bool,
                    today: dt.date) -> CallerIdCheck:
    """Whether a campaign may send `number` as its caller ID (see the module's rules).

    `vouched`: the agency's caller IDs (`Settings.caller_ids`); `require_vouched`: rule 3 applies
    (`Settings.caller_ids_required`); `today`: a vouching date after it is not a vouching yet."""
    text = (number or "").strip()
    if not text:
        return CallerIdCheck("", CallerIdCode.MISSING,
                             "The campaign has no caller ID: give it one of the agency's numbers in E.164 "
                             "(16 CFR 310.4(a)(8) requires a number the agency can be called back on).")
    if text.lower() in WITHHELD:
        return CallerIdCheck(text, CallerIdCode.WITHHELD,
                             f"Caller ID {text!r} is withheld: 16 CFR 310.4(a)(8) requires a number the agency "
                             "can be called back on; give a real number in E.164 (+1NPANXXXXXX).")
    info = parse_number(text)
    if not info.ok or info.e164 != text:
        detail = f" ({info.detail})" if info.detail else ""
        return CallerIdCheck(text, CallerIdCode.INVALID,
                             f"Caller ID {text} is not a US number a person can call back, in E.164{detail}: "
                             "write it as +1 and ten digits.")
    record = next((entry for entry in vouched if entry.number == text), None)
    if record is None:
        if not require_vouched:
            return CallerIdCheck(text)
        return CallerIdCheck(text, CallerIdCode.NOT_VOUCHED,
                             f"Caller ID {text} is not among the agency's vouched numbers: add it to [[caller_ids]] "
                             "with its owner, vouched_by and vouched_on (16 CFR 310.4(a)(8)).")
    problems = record.problems(today)
    if problems:
        return CallerIdCheck(text, CallerIdCode.VOUCHING_INCOMPLETE, problems[0], record)
    return CallerIdCheck(text, vouched=record)
