"""Rule data as typed values: federal defaults, effective-dated state rules, holiday sets.

The data lives in `compliance_rules/data/state_rules.yaml` (with a citation on every rule);
`load_rulebook()` parses and validates it once, so a malformed file is found at start-up and
the gate fails closed (`gate_unavailable`) instead of guessing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from compliance_rules.holidays import KNOWN_HOLIDAYS, ObservedRule
from compliance_rules.model import Channel

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_RULES_PATH = DATA_DIR / "state_rules.yaml"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULT_TEXTS_CITATION = (
    "47 U.S.C. 227(b)(1)(A)(iii); 47 CFR 64.1200(a)(2) (texts are calls: FCC 03-153 para. 165; "
    "Campbell-Ewald Co. v. Gomez, 577 U.S. 153 (2016))"
)
DEFAULT_SERVICE_TEXT_CITATION = (
    "47 CFR 64.1200(a)(12) (one confirmation of a revocation, no marketing); FCC 15-72 paras. 103-106 "
    "(a one-time text sent at the consumer's request)"
)

Window = tuple[time, time]
# Allowed [start, end) windows per weekday, Monday first; an empty tuple means no calls that day.
WeeklyHours = tuple[tuple[Window, ...], ...]


class RuleDataError(ValueError):
    """The rule data is missing or malformed; the message names the offending entry."""


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ConsentScope(StrEnum):
    """Which dials a state's prior-express-written-consent rule covers."""

    AUTOMATED = "automated"  # "automated system for the selection or dialing" (FL, OK, MD)
    ALL = "all"  # every telephonic sales call (CT)


@dataclass(frozen=True)
class HolidayRule:
    keys: tuple[str, ...]
    observed: ObservedRule
    citation: str


@dataclass(frozen=True)
class CapRule:
    max_attempts: int
    window_hours: int
    citation: str


@dataclass(frozen=True)
class ConsentRule:
    required_for: ConsentScope
    citation: str


@dataclass(frozen=True)
class StateRule:
    """One effective-dated rule of one state; several may apply at once (they intersect)."""

    state: str
    citation: str
    confidence: Confidence
    hours: WeeklyHours
    extra_zones: tuple[str, ...] = ()
    holidays: HolidayRule | None = None
    declared_days: frozenset[date] = frozenset()
    declared_citation: str = ""
    cap: CapRule | None = None
    consent: ConsentRule | None = None
    effective_from: date | None = None
    effective_to: date | None = None
    flag: str | None = None
    # The channels the rule governs: both unless its row says `channels: [voice]`.
    channels: frozenset[Channel] = frozenset(Channel)

    def in_force(
        self, day: date, *, include_low_confidence: bool, flags: frozenset[str], channel: Channel = Channel.VOICE
    ) -> bool:
        """Whether this rule applies on local date `day`, to `channel`, under the given options."""
        if channel not in self.channels:
            return False
        if self.confidence is Confidence.LOW and not include_low_confidence:
            return False
        if self.flag is not None and self.flag not in flags:
            return False
        if self.effective_from is not None and day < self.effective_from:
            return False
        return not (self.effective_to is not None and day >= self.effective_to)


@dataclass(frozen=True)
class FederalRules:
    hours: WeeklyHours
    citation: str
    registry_max_age_days: int
    registry_citation: str
    dnc_citation: str
    internal_dnc_citation: str
    opt_out_citation: str
    litigator_citation: str
    pewc_citation: str
    ptc_citation: str
    ptc_valid_months: int
    # Why the rules of calls apply to texts, and why a marketing text needs written consent.
    texts_citation: str = DEFAULT_TEXTS_CITATION
    # The text a consumer asked for (HELP's answer, a revocation's confirmation) is not a solicitation.
    service_text_citation: str = DEFAULT_SERVICE_TEXT_CITATION


@dataclass(frozen=True)
class RuleBook:
    """Everything the pure rules need besides the facts about one number."""

    version: str
    digest: str
    federal: FederalRules
    rules: tuple[StateRule, ...]
    state_dnc_lists: Mapping[str, str] = field(default_factory=dict)
    # All-party-consent states for call recording: state -> citation (any confidence).
    recording_consent_states: Mapping[str, str] = field(default_factory=dict)
    recording_notice: str = "This call is recorded."

    def rules_for(self, state: str) -> tuple[StateRule, ...]:
        return tuple(rule for rule in self.rules if rule.state == state)

    @property
    def data_version(self) -> str:
        return f"{self.version} sha256:{self.digest[:12]}"


def _time(text: Any, where: str) -> time:
    if not isinstance(text, str):
        raise RuleDataError(f"{where}: time must be a 'HH:MM' string, got {text!r}")
    try:
        hours, minutes = text.split(":")
        if hours == "24" and minutes == "00":
            return time.max
        return time(int(hours), int(minutes))
    except ValueError:
        raise RuleDataError(f"{where}: {text!r} is not a 'HH:MM' time") from None


def parse_hours(raw: Any, where: str) -> WeeklyHours:
    """`{mon: [["08:00","21:00"]], ...}` with all seven days -> WeeklyHours."""
    if not isinstance(raw, dict) or set(raw) != set(WEEKDAYS):
        raise RuleDataError(f"{where}: hours must list exactly the days {', '.join(WEEKDAYS)}")
    week: list[tuple[Window, ...]] = []
    for day in WEEKDAYS:
        windows = []
        for pair in raw[day] or ():
            if not isinstance(pair, list) or len(pair) != 2:
                raise RuleDataError(f"{where}.{day}: each window is a [start, end] pair")
            start, end = _time(pair[0], f"{where}.{day}"), _time(pair[1], f"{where}.{day}")
            if not start < end:
                raise RuleDataError(f"{where}.{day}: window start {pair[0]} is not before end {pair[1]}")
            windows.append((start, end))
        week.append(tuple(windows))
    return tuple(week)


def _date(raw: Any, where: str) -> date | None:
    if raw is None:
        return None
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise RuleDataError(f"{where}: {raw!r} is not a YYYY-MM-DD date") from None


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RuleDataError(f"{where}: '{key}' (a citation or text) is required")
    return value


def _expand_holidays(keys: list[Any], sets: Mapping[str, list[Any]], where: str) -> tuple[str, ...]:
    result: list[str] = []
    for key in keys:
        if key in sets:
            result.extend(_expand_holidays(sets[key], sets, where))
        elif key in KNOWN_HOLIDAYS:
            result.append(key)
        else:
            raise RuleDataError(f"{where}: unknown holiday {key!r}")
    return tuple(dict.fromkeys(result))


def _check_zone(name: str, where: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleDataError(f"{where}: unknown time zone {name!r}") from None
    return name


def _parse_rule(raw: Mapping[str, Any], sets: Mapping[str, list[Any]], index: int) -> StateRule:
    where = f"rules[{index}]"
    state = raw.get("state")
    if not isinstance(state, str) or len(state) != 2 or not state.isupper():
        raise RuleDataError(f"{where}: 'state' must be a two-letter code")
    where = f"rules[{index}] ({state})"
    try:
        confidence = Confidence(str(raw.get("confidence")))
    except ValueError:
        raise RuleDataError(f"{where}: confidence must be high, medium or low") from None
    holidays = None
    if raw.get("holidays"):
        h = raw["holidays"]
        try:
            observed = ObservedRule(h.get("observed", "none"))
        except ValueError:
            raise RuleDataError(f"{where}: unknown observed-day rule {h.get('observed')!r}") from None
        holidays = HolidayRule(
            keys=_expand_holidays([h.get("set")], sets, where),
            observed=observed,
            citation=_text(h, "citation", where + ".holidays"),
        )
    cap = None
    if raw.get("cap"):
        c = raw["cap"]
        if not isinstance(c.get("max_attempts"), int) or not isinstance(c.get("window_hours"), int):
            raise RuleDataError(f"{where}.cap: max_attempts and window_hours must be whole numbers")
        cap = CapRule(c["max_attempts"], c["window_hours"], _text(c, "citation", where + ".cap"))
    consent = None
    if raw.get("consent"):
        c = raw["consent"]
        try:
            scope = ConsentScope(c.get("pewc_required_for"))
        except ValueError:
            raise RuleDataError(f"{where}.consent: pewc_required_for must be automated or all") from None
        consent = ConsentRule(scope, _text(c, "citation", where + ".consent"))
    declared = frozenset(
        d for d in (_date(v, where + ".declared_days") for v in raw.get("declared_days") or ()) if d
    )
    return StateRule(
        state=state,
        citation=_text(raw, "citation", where),
        confidence=confidence,
        hours=parse_hours(raw.get("hours"), where + ".hours"),
        extra_zones=tuple(_check_zone(z, where) for z in raw.get("extra_zones") or ()),
        holidays=holidays,
        declared_days=declared,
        declared_citation=raw.get("declared_citation") or "",
        cap=cap,
        consent=consent,
        effective_from=_date(raw.get("effective_from"), where + ".effective_from"),
        effective_to=_date(raw.get("effective_to"), where + ".effective_to"),
        flag=raw.get("flag"),
        channels=_channels(raw.get("channels"), where),
    )


def _channels(raw: Any, where: str) -> frozenset[Channel]:
    if raw is None:
        return frozenset(Channel)
    try:
        channels = frozenset(Channel(str(value)) for value in raw)
    except (TypeError, ValueError):
        raise RuleDataError(f"{where}: channels must list voice and/or sms") from None
    if not channels:
        raise RuleDataError(f"{where}: channels must not be empty")
    return channels


def parse_rulebook(text: str) -> RuleBook:
    """Parse and validate rule data given as YAML text."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleDataError(f"rule data is not valid YAML: {error}") from None
    if not isinstance(raw, dict) or "federal" not in raw or "rules" not in raw:
        raise RuleDataError("rule data must have 'federal' and 'rules' sections")
    fed = raw["federal"]
    federal = FederalRules(
        hours=parse_hours(fed.get("hours"), "federal.hours"),
        citation=_text(fed, "citation", "federal"),
        registry_max_age_days=int(fed.get("registry_max_age_days", 31)),
        registry_citation=_text(fed, "registry_citation", "federal"),
        dnc_citation=_text(fed, "dnc_citation", "federal"),
        internal_dnc_citation=_text(fed, "internal_dnc_citation", "federal"),
        opt_out_citation=_text(fed, "opt_out_citation", "federal"),
        litigator_citation=_text(fed, "litigator_citation", "federal"),
        pewc_citation=_text(fed, "pewc_citation", "federal"),
        ptc_citation=_text(fed, "ptc_citation", "federal"),
        ptc_valid_months=int(fed.get("ptc_valid_months", 12)),
        texts_citation=str(fed.get("texts_citation") or DEFAULT_TEXTS_CITATION),
        service_text_citation=str(fed.get("service_text_citation") or DEFAULT_SERVICE_TEXT_CITATION),
    )
    sets = raw.get("holiday_sets") or {}
    rules = tuple(_parse_rule(rule, sets, index) for index, rule in enumerate(raw["rules"] or ()))
    lists = {str(state): str(citation) for state, citation in (raw.get("state_dnc_lists") or {}).items()}
    recording = raw.get("recording_consent") or {}
    if not isinstance(recording, dict):
        raise RuleDataError("recording_consent must be a mapping")
    all_party: dict[str, str] = {}
    for state, row in (recording.get("all_party_states") or {}).items():
        where = f"recording_consent.all_party_states.{state}"
        if not isinstance(row, dict):
            raise RuleDataError(f"{where} must be a mapping with a citation")
        all_party[str(state)] = _text(row, "citation", where)
    return RuleBook(
        version=str(raw.get("version", "unversioned")),
        digest=hashlib.sha256(text.encode()).hexdigest(),
        federal=federal,
        rules=rules,
        state_dnc_lists=lists,
        recording_consent_states=all_party,
        recording_notice=str(recording.get("notice") or "This call is recorded."),
    )


def load_rulebook(path: Path | None = None) -> RuleBook:
    """Load the shipped rule data (or another file with the same layout)."""
    path = path or DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RuleDataError(f"cannot read rule data {path}: {error.strerror}") from None
    return parse_rulebook(text)
