"""The pure decision: may we contact this number now, for this campaign and purpose?

No IO here: `locate()` resolves where the lead may be from the number and the address (static
data only), `decide()` applies the rule book to that location, the list facts fetched by the
caller, the campaign policy and an explicit `now`. Every rule that fails adds a reason; the
contact is allowed only when there is none.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from compliance_rules import freshness, numbers
from compliance_rules import location as zip_data
from compliance_rules.holidays import holiday_on
from compliance_rules.model import (
    US_STATE_CODES,
    Channel,
    ConsentKind,
    ConsentRecord,
    ContactRequest,
    Decision,
    DialMode,
    ListVersions,
    Notice,
    NoticeCode,
    NumberFacts,
    Reason,
    ReasonCode,
    TextKind,
)
from compliance_rules.numbers import NumberInfo
from compliance_rules.policy import CampaignPolicy
from compliance_rules.ruleset import ConsentScope, RuleBook, StateRule, WeeklyHours

FEDERAL = "federal"
INTERNAL = "internal"
LITIGATOR = "litigator"
OPTOUT = "optout"

_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class GateOptions:
    """Agency-wide switches (not per campaign)."""

    # Rows the research marks low-confidence (KY, MI, WY hours, PA SB 992) apply unless switched off.
    include_low_confidence: bool = True
    flags: frozenset[str] = frozenset()  # enables flagged rules, e.g. "pa_sb992"
    # A state with its own DNC list whose copy is not loaded blocks its leads (registry_stale).
    require_state_dnc_lists: bool = True
    registry_max_age_days: int | None = None  # None: the rule book's (31 days)


@dataclass(frozen=True)
class Location:
    """Where the lead may be: every zone and every state whose rules may apply."""

    number: NumberInfo
    zones: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    problems: tuple[Reason, ...] = field(default=())


def _invalid(number: NumberInfo) -> Reason:
    return Reason(
        ReasonCode.INVALID_NUMBER,
        f"{number.raw!r} cannot be contacted: {number.detail}",
        "47 CFR 64.1200(c)(1) (the called party's location must be known); agency policy",
    )


def locate(request: ContactRequest) -> Location:
    """Resolve the zones and states a lead may be in: tz(NPA-NXX) ∪ tz(ZIP) (∪ tz(state) without
    a ZIP), states = {area-code state, address state} (rules.md section 4; design decision 8)."""
    number = numbers.parse_number(request.phone)
    if not number.ok:
        return Location(number, problems=(_invalid(number),))
    zones = set(number.zones)
    states = set(number.npa_states)
    if number.npa_states and not all(zip_data.zone_fits_states(zone, number.npa_states) for zone in number.zones):
        # The numbering data names a zone none of the area code's states keeps (907-581 Unalaska,
        # AK -> Pacific/Honolulu, an hour behind Alaska): every zone of those states applies too.
        for npa_state in number.npa_states:
            zones.update(zip_data.zones_for_state(npa_state))
    problems: list[Reason] = []
    address_zone_known = False
    found_state: str | None = None
    if request.zip_code and request.zip_code.strip():  # a blank field is no ZIP code
        found = zip_data.locate_zip(request.zip_code)
        if found is None or found.zone is None:
            problems.append(
                Reason(
                    ReasonCode.UNKNOWN_LOCATION,
                    f"ZIP code {request.zip_code!r} is not in the offline ZIP data, so the lead's time zone is unknown",
                    "47 CFR 64.1200(c)(1); 16 CFR 310.4(c) (called party's local time)",
                )
            )
        else:
            zones.add(found.zone)
            zones.update(found.also)  # a ZIP code on a zone line: both clocks
            states.add(found.state)
            found_state = found.state
            address_zone_known = True
    state = (request.state or "").strip().upper()  # a blank field is no state
    if state:
        if state not in US_STATE_CODES:
            # An unknown code would match no state rule and give no zone: the lead's own state
            # rules would silently not apply ("Florida", "F.L." or a typo). Blocked, not guessed.
            problems.append(_unknown_state(request.state or ""))
        else:
            states.add(state)
            if not address_zone_known or state != found_state:
                # The state alone, or a state the ZIP code contradicts: every zone of that state
                # too, since either may be where the lead is (the strictest window applies).
                zones.update(zip_data.zones_for_state(state))
    if not zones and not problems:
        problems.append(_no_zone(number))
    return Location(number, tuple(sorted(zones)), tuple(sorted(states)), tuple(problems))


def _unknown_state(raw: str) -> Reason:
    return Reason(
        ReasonCode.UNKNOWN_LOCATION,
        f"state {raw!r} is not a two-letter US state or territory code, so the lead's state rules and "
        "time zone are unknown",
        "47 CFR 64.1200(c)(1); 16 CFR 310.4(c) (called party's local time); agency policy",
    )


def _no_zone(number: NumberInfo) -> Reason:
    what = "has no time zone in the numbering data" if number.geographic else "is not geographic (toll-free or personal)"
    return Reason(
        ReasonCode.UNKNOWN_LOCATION,
        f"{number.e164} {what} and the lead has no address to locate it",
        "47 CFR 64.1200(c)(1); 16 CFR 310.4(c) (called party's local time)",
    )


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_DAY_MICROSECONDS = 24 * 3600 * 1_000_000


def _microseconds(t: time) -> int:
    """Time of day in whole microseconds (exact: no float rounding at a window's edge)."""
    if t == time.max:
        return _DAY_MICROSECONDS  # "24:00" in the rule data
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _inside(hours: WeeklyHours, local: datetime, margin: timedelta) -> bool:
    """Launch allowed: start <= local time < end, and local time + margin <= end, in one window.

    Windows are [start, end): with no margin, 21:00:00 itself is outside ("after 9 p.m.", 47 CFR
    64.1200(c)(1): a call launched at 21:00:00 rings after it). With a margin the last launch is
    end - margin, whose ringing ends by the close. Microseconds count: 20:57:00.4 is past a
    20:57:00 last launch."""
    now = _microseconds(local.time())
    margin_us = margin // timedelta(microseconds=1)
    return any(
        _microseconds(start) <= now < _microseconds(end) and now + margin_us <= _microseconds(end)
        for start, end in hours[local.weekday()]
    )


def _describe(hours: WeeklyHours, weekday: int) -> str:
    windows = hours[weekday]
    if not windows:
        return f"no calls on {calendar.day_name[weekday]}"
    return ", ".join(f"{s:%H:%M}-{'24:00' if e == time.max else f'{e:%H:%M}'}" for s, e in windows)


def _window_reason(hours: WeeklyHours, local: datetime, zone: str, margin: timedelta, who: str, citation: str) -> Reason:
    return Reason(
        ReasonCode.OUTSIDE_CALLING_WINDOW,
        f"{local:%H:%M} {_DAY_NAMES[local.weekday()]} in {zone} is outside {who} hours "
        f"({_describe(hours, local.weekday())}; launches stop {int(margin.total_seconds() // 60)} min before close)",
        citation,
    )


def _rules_in_force(
    book: RuleBook, states: Iterable[str], day: date, options: GateOptions, channel: Channel = Channel.VOICE
) -> list[StateRule]:
    return [
        rule
        for state in states
        for rule in book.rules_for(state)
        if rule.in_force(day, include_low_confidence=options.include_low_confidence, flags=options.flags,
                         channel=channel)
    ]


def _check_windows(
    location: Location, policy: CampaignPolicy, book: RuleBook, now: datetime, options: GateOptions,
    channel: Channel = Channel.VOICE,
) -> list[Reason]:
    reasons: list[Reason] = []
    for zone in location.zones:
        local = now.astimezone(_zone(zone))
        if not _inside(book.federal.hours, local, policy.margin):
            reasons.append(_window_reason(book.federal.hours, local, zone, policy.margin, "federal", book.federal.citation))
        if policy.window is not None and not _inside(policy.window, local, policy.margin):
            reasons.append(
                _window_reason(policy.window, local, zone, policy.margin, "the campaign's", "Campaign calling window (agency policy)")
            )
    for state in location.states:
        for zone in location.zones:
            local_day = now.astimezone(_zone(zone)).date()
            for rule in _rules_in_force(book, (state,), local_day, options, channel):
                for rule_zone in (zone, *rule.extra_zones):
                    local = now.astimezone(_zone(rule_zone))
                    if not _inside(rule.hours, local, policy.margin):
                        reasons.append(_window_reason(rule.hours, local, rule_zone, policy.margin, f"{state}", rule.citation))
                    holiday = None
                    if rule.holidays is not None:
                        holiday = holiday_on(rule.holidays.keys, local.date(), rule.holidays.observed)
                        if holiday is not None:
                            reasons.append(
                                Reason(
                                    ReasonCode.STATE_HOLIDAY,
                                    f"{local.date().isoformat()} in {rule_zone} is a {state} no-call holiday ({holiday})",
                                    rule.holidays.citation,
                                )
                            )
                    if local.date() in rule.declared_days and holiday is None:
                        reasons.append(
                            Reason(
                                ReasonCode.STATE_HOLIDAY,
                                f"{local.date().isoformat()} is a declared no-call day in {state}",
                                rule.declared_citation or rule.citation,
                            )
                        )
    return _unique(reasons)


def window_reasons(
    location: Location, policy: CampaignPolicy, book: RuleBook, at: datetime, options: GateOptions = GateOptions(),
    channel: Channel = Channel.VOICE,
) -> list[Reason]:
    """Why a call to `location` at `at` would be outside its calling windows (federal, the
    campaign's, each state's hours, holidays and declared no-call days), exactly as the gate
    decides it; empty: inside. For scheduling (a callback), not a decision: lists, caps and
    consent are decided again when the call is dialed."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    if location.problems or not location.zones:
        return list(location.problems) or [gate_unavailable_reason("the lead's time zone is unknown")]
    return _check_windows(location, policy, book, at, options, channel)


def callable_times(
    location: Location, policy: CampaignPolicy, book: RuleBook, start: datetime, end: datetime, step: timedelta,
    options: GateOptions = GateOptions(),
) -> list[datetime]:
    """The instants from `start` (included) to `end` (excluded), every `step`, at which
    `window_reasons` finds nothing: the times a callback may be set for."""
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    times = []
    at = start
    while at < end:
        if not window_reasons(location, policy, book, at, options):
            times.append(at)
        at += step
    return times


def _unique(reasons: list[Reason]) -> list[Reason]:
    return list(dict.fromkeys(reasons))


def _months_after(moment: datetime, months: int) -> datetime:
    """The same day `months` later, clamped to the month's last day (Feb 29 + 12 months = Feb 28)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _has_consent(records: Iterable[ConsentRecord], kind: ConsentKind, now: datetime, *, scope: str | None = None, valid_months: int | None = None) -> bool:
    # `valid_months` runs from each record's own date: a permission given 2027-02-28 lapses on
    # 2028-02-28, so 2028-02-29 is past it (counting back 12 months from 2028-02-29 would clamp to
    # 2027-02-28 and keep it a day too long).
    return any(
        record.kind is kind
        and record.valid_at(now)
        and (scope is None or record.scope in (None, scope))
        and (valid_months is None or now < _months_after(record.obtained_at, valid_months))
        for record in records
    )


def _check_consent(request: ContactRequest, location: Location, policy: CampaignPolicy, book: RuleBook, now: datetime, options: GateOptions) -> tuple[list[Reason], DialMode | None]:
    reasons: list[Reason] = []
    required_mode: DialMode | None = None
    has_pewc = _has_consent(request.consents, ConsentKind.PEWC, now)
    if policy.require_pewc and not has_pewc:
        reasons.append(Reason(ReasonCode.CONSENT_MISSING, "the campaign requires prior express written consent and none is on file", book.federal.pewc_citation))
    elif request.kind_of_text is TextKind.MARKETING and not has_pewc:
        # A marketing text is sent by the system (an automated telemarketing call to a mobile
        # number): written consent is needed whatever the campaign says.
        reasons.append(Reason(ReasonCode.CONSENT_MISSING,
                              "a marketing text needs prior express written consent and none is on file",
                              f"{book.federal.pewc_citation}; {book.federal.texts_citation}"))
    if policy.needs_ptc:
        if not _has_consent(request.consents, ConsentKind.PTC, now, scope=policy.consent_scope,
                            valid_months=book.federal.ptc_valid_months):
            reasons.append(
                Reason(
                    ReasonCode.CONSENT_MISSING,
                    f"Medicare marketing needs a permission to contact given less than {book.federal.ptc_valid_months} months ago",
                    book.federal.ptc_citation,
                )
            )
    mode = request.dial_mode or policy.dial_mode
    if not has_pewc:
        for rule in _rules_in_force_any_zone(book, location, now, options, request.channel):
            if rule.consent is None:
                continue
            if rule.consent.required_for is ConsentScope.ALL:
                reasons.append(Reason(ReasonCode.CONSENT_MISSING, f"{rule.state} requires prior express written consent for sales calls and none is on file", rule.consent.citation))
            elif mode.automated:
                required_mode = DialMode.PREVIEW
                reasons.append(
                    Reason(
                        ReasonCode.CONSENT_MISSING,
                        f"{rule.state} requires prior express written consent for automated ({mode.value}) dialing; "
                        "without it the lead may be dialed only in preview or manual mode",
                        rule.consent.citation,
                    )
                )
    return _unique(reasons), required_mode


def _freshness_reasons(
    location: Location, versions: ListVersions, book: RuleBook, now: datetime, options: GateOptions
) -> list[Reason]:
    """`registry_stale` for every list this lead depends on whose copy is missing or too old:
    the federal registry (31 days), the state lists of every state the lead may be in (each by
    its own publication schedule), and the litigator list when its copy carries a date."""
    fed = book.federal
    # The call's date is the latest of the UTC date and the lead's local dates: UTC is ahead of
    # every mainland zone, but Guam and the Northern Marianas (UTC+10) reach a new day first, and
    # a copy must not be used on a local date past its deadline (47 CFR 64.1200(c)(2)(i)(D): "no
    # more than 31 days prior to the date any call is made").
    today = max([freshness.utc_today(now), *(now.astimezone(_zone(zone)).date() for zone in location.zones)])
    reasons: list[Reason] = []
    federal_rule = freshness.rule_for(book, FEDERAL, options.registry_max_age_days)
    if federal_rule is not None:
        federal = freshness.judge(FEDERAL, federal_rule, freshness.parse_copy_date(versions.dates.get(FEDERAL)), today, 0)
        if federal.status is freshness.FreshnessStatus.MISSING:
            reasons.append(Reason(ReasonCode.REGISTRY_STALE, "no National DNC Registry copy has been loaded", fed.registry_citation))
        elif (reason := freshness.stale_reason(federal, fed.registry_citation)) is not None:
            reasons.append(reason)
    for state in location.states:
        citation = book.state_dnc_lists.get(state)
        rule = book.refresh.get(f"state:{state}")
        if citation is None or rule is None:
            continue
        judged = freshness.judge(f"state:{state}", rule, freshness.parse_copy_date(versions.dates.get(f"state:{state}")), today, 0)
        if judged.status is freshness.FreshnessStatus.MISSING:
            if options.require_state_dnc_lists:
                reasons.append(Reason(ReasonCode.REGISTRY_STALE, f"{state} keeps its own Do Not Call list and no copy of it has been loaded", citation))
        elif (reason := freshness.stale_reason(judged, f"{citation}; {rule.citation}")) is not None:
            reasons.append(reason)
    litigator_rule = book.refresh.get(LITIGATOR)
    litigator_date = versions.dates.get(LITIGATOR)
    if litigator_rule is not None and litigator_date:
        # Only a dated copy is judged (agency policy); an unreadable date is stale.
        judged = freshness.judge(LITIGATOR, litigator_rule, freshness.parse_copy_date(litigator_date), today, 0)
        if (reason := freshness.stale_reason(judged, litigator_rule.citation)) is not None:
            reasons.append(reason)
    return reasons


def _check_lists(location: Location, facts: NumberFacts, versions: ListVersions, book: RuleBook, now: datetime, options: GateOptions) -> list[Reason]:
    fed = book.federal
    number = location.number.e164
    reasons = _freshness_reasons(location, versions, book, now, options)
    if FEDERAL in facts.hits:
        reasons.append(Reason(ReasonCode.DNC_FEDERAL, f"{number} is on the National Do Not Call Registry", fed.dnc_citation))
    for state in location.states:
        citation = book.state_dnc_lists.get(state)
        if citation is not None and f"state:{state}" in facts.hits:
            reasons.append(Reason(ReasonCode.DNC_STATE, f"{number} is on the {state} state Do Not Call list", citation))
    if INTERNAL in facts.hits:
        reasons.append(Reason(ReasonCode.DNC_INTERNAL, f"{number} is on the agency's internal Do Not Call list", fed.internal_dnc_citation))
    if LITIGATOR in facts.hits:
        reasons.append(Reason(ReasonCode.LITIGATOR, f"{number} is on the known-litigator list", fed.litigator_citation))
    if OPTOUT in facts.hits:
        reasons.append(Reason(ReasonCode.OPTED_OUT, f"{number} has opted out of contact", fed.opt_out_citation))
    return reasons


def _rules_in_force_any_zone(
    book: RuleBook, location: Location, now: datetime, options: GateOptions, channel: Channel = Channel.VOICE
) -> list[StateRule]:
    """State rules in force on the local date of any zone the lead may be in (conservative
    around midnight and effective dates)."""
    days = {now.astimezone(_zone(zone)).date() for zone in location.zones} or {now.date()}
    found: dict[int, StateRule] = {}
    for day in sorted(days):
        for rule in _rules_in_force(book, location.states, day, options, channel):
            found.setdefault(id(rule), rule)
    return list(found.values())


def applicable_caps(
    location: Location, policy: CampaignPolicy, book: RuleBook, now: datetime, options: GateOptions,
    channel: Channel = Channel.VOICE,
) -> list[tuple[int, int, str]]:
    """(max attempts, window hours, citation) for every cap that applies to this lead. Calls and
    marketing texts share the counters (one subject, one person), as the state caps count both."""
    caps = [
        (rule.cap.max_attempts, rule.cap.window_hours, rule.cap.citation)
        for rule in _rules_in_force_any_zone(book, location, now, options, channel)
        if rule.cap is not None
    ]
    if policy.max_attempts_per_24h is not None:
        caps.append((policy.max_attempts_per_24h, 24, "Campaign attempt cap (agency policy)"))
    return caps


def _check_caps(
    location: Location, facts: NumberFacts, policy: CampaignPolicy, book: RuleBook, now: datetime,
    options: GateOptions, channel: Channel = Channel.VOICE,
) -> list[Reason]:
    reasons: list[Reason] = []
    for max_attempts, window_hours, citation in applicable_caps(location, policy, book, now, options, channel):
        # The window is closed at both ends: an attempt exactly 24 h ago still counts (a 24-hour
        # period holding it and this one is not over yet, the stricter reading of "3 calls in
        # 24 hours"), and so does one stamped after `now` by a controller whose clock runs ahead.
        since = now - timedelta(hours=window_hours)
        count = sum(1 for attempt in facts.attempts if since <= attempt)
        if count >= max_attempts:
            reasons.append(
                Reason(
                    ReasonCode.FREQUENCY_CAP,
                    f"{count} attempts on subject {policy.cap_subject!r} in the last {window_hours} h (limit {max_attempts})",
                    citation,
                )
            )
    return _unique(reasons)


def local_times(zones: Iterable[str], now: datetime) -> tuple[str, ...]:
    return tuple(now.astimezone(_zone(zone)).isoformat(timespec="seconds") for zone in zones)


def data_versions(book: RuleBook, versions: ListVersions, location: Location | None) -> dict[str, str]:
    result = {
        "rules": book.data_version,
        "numbering": numbers.data_version(),
        "zip_data": zip_data.data_version(),
        "federal_dnc": versions.dates.get(FEDERAL, "missing"),
    }
    if versions.dates.get(LITIGATOR):
        result["litigator"] = versions.dates[LITIGATOR]
    if location is not None:
        for state in location.states:
            if state in book.state_dnc_lists:
                result[f"state_dnc:{state}"] = versions.dates.get(f"state:{state}", "missing")
    return result


def recording_notices(location: Location, book: RuleBook) -> tuple[Notice, ...]:
    """The recording disclosure, when any state the lead may be in requires every party's consent."""
    states = sorted(state for state in location.states if state in book.recording_consent_states)
    if not states:
        return ()
    citation = "; ".join(f"{state}: {book.recording_consent_states[state]}" for state in states)
    message = (f"announce the recording ({', '.join(states)} require every party's consent): "
               f"{book.recording_notice!r}")
    return (Notice(NoticeCode.RECORDING_DISCLOSURE, message, citation),)


def decide(
    request: ContactRequest,
    location: Location,
    facts: NumberFacts,
    versions: ListVersions,
    policy: CampaignPolicy,
    book: RuleBook,
    now: datetime,
    decision_id: str,
    options: GateOptions = GateOptions(),
) -> Decision:
    """Apply every rule; `now` must be timezone-aware."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    reasons: list[Reason] = list(location.problems)
    if location.number.ok and not location.zones and not location.problems:
        # `locate` says so itself; a location built elsewhere without a zone (data that has no
        # entry for the number or the address) is blocked too: the window is never guessed.
        reasons.append(_no_zone(location.number))
    required_mode: DialMode | None = None
    text_kind = request.kind_of_text
    notices: tuple[Notice, ...] = ()
    if location.number.ok and text_kind is not None and text_kind.service:
        # The consumer asked for this text (HELP, or the confirmation of their own revocation):
        # not a solicitation, so neither the lists (it may go to a number that has just opted
        # out) nor the windows, caps or consent rules of solicitations apply.
        notices = (service_text_notice(text_kind, book),)
    elif location.number.ok:
        channel = request.channel
        reasons += _check_lists(location, facts, versions, book, now, options)
        reasons += _check_windows(location, policy, book, now, options, channel)
        if request.counts_toward_caps:
            reasons += _check_caps(location, facts, policy, book, now, options, channel)
        if text_kind is not TextKind.CONVERSATION:
            consent_reasons, required_mode = _check_consent(request, location, policy, book, now, options)
            reasons += consent_reasons
        if channel is Channel.VOICE:
            notices = recording_notices(location, book)
    return Decision(
        decision_id=decision_id,
        decided_at=now.astimezone(UTC),
        phone=location.number.e164 or request.phone,
        lead_id=request.lead_id,
        campaign_id=policy.campaign_id,
        purpose=policy.purpose.value,
        reasons=tuple(reasons),
        timezones=location.zones,
        local_times=local_times(location.zones, now),
        data_versions=data_versions(book, versions, location),
        required_dial_mode=required_mode,
        notices=notices,
        channel=request.channel,
        text_kind=text_kind,
    )


def service_text_notice(kind: TextKind, book: RuleBook) -> Notice:
    """Why a text the consumer asked for went out without the rules of solicitations."""
    what = "the answer to the consumer's HELP" if kind is TextKind.HELP_REPLY else "the one confirmation of a revocation"
    return Notice(NoticeCode.SERVICE_TEXT,
                  f"{what}: not a solicitation; lists, windows, caps and consent rules not applied",
                  book.federal.service_text_citation)


def unavailable(
    request: ContactRequest, policy: CampaignPolicy, now: datetime, decision_id: str, why: str
) -> Decision:
    """A fail-closed decision: the gate could not judge, so the contact is blocked."""
    return Decision(
        decision_id=decision_id,
        decided_at=now.astimezone(UTC),
        phone=request.phone,
        lead_id=request.lead_id,
        campaign_id=policy.campaign_id,
        purpose=policy.purpose.value,
        reasons=(gate_unavailable_reason(why),),
        channel=request.channel,
        text_kind=request.kind_of_text,
    )


def gate_unavailable_reason(why: str) -> Reason:
    return Reason(ReasonCode.GATE_UNAVAILABLE, f"the compliance gate could not decide: {why}", "Fail-closed gate (agency policy)")
