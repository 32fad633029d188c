"""Rule data as typed values: federal defaults, effective-dated state rules, holiday sets.

The data lives in `compliance_rules/data/state_rules.yaml` (with a citation on every rule);
`load_rulebook()` parses and validates it once, so a malformed file is found at start-up and
the gate fails closed (`gate_unavailable`) instead of guessing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from compliance_rules.holidays import KNOWN_HOLIDAYS, ObservedRule
from compliance_rules.model import US_STATE_CODES, Channel

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

# The longest frequency-cap window (FL/OK/MD/OR: 3 per 24 h); the attempt store keeps this much.
MAX_CAP_WINDOW_HOURS = 24

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


QUARTERLY = ((1, 1), (4, 1), (7, 1), (10, 1))
MONTHLY = tuple((month, 1) for month in range(1, 13))


@dataclass(frozen=True)
class RefreshRule:
    """How old a loaded copy of one DNC list may be before the gate stops relying on it.

    Two shapes, as the rules are written:
    * `max_age_days`: a copy obtained more than that many days ago is stale (the federal
      registry's 31 days; a list republished continuously);
    * `published` (month, day) editions plus `grace_days`: a copy is good until `grace_days`
      after the next edition is published, and stale from that day (the state lists: "updated
      quarterly; a new listing takes effect N days after it is published").

    A copy's date is the date of its edition (or of its download: a download always carries
    the edition current that day, so the next edition after either date is the same one).
    """

    citation: str
    confidence: Confidence = Confidence.HIGH
    max_age_days: int | None = None
    published: tuple[tuple[int, int], ...] = ()
    grace_days: int = 0

    def next_edition(self, copy_date: date) -> date:
        """The first scheduled edition published after `copy_date`."""
        for year in (copy_date.year, copy_date.year + 1):
            for month, day in self.published:
                edition = date(year, month, day)
                if edition > copy_date:
                    return edition
        raise AssertionError("a published schedule always has an edition within a year")  # pragma: no cover

    def stale_from(self, copy_date: date) -> date:
        """The first date on which a copy dated `copy_date` may no longer be used."""
        if self.max_age_days is not None:
            # "No more than 31 days prior to the date any call is made": day 31 is still good.
            return copy_date + timedelta(days=self.max_age_days + 1)
        # Conservative by a day where a rule says "more than N days after publication".
        return self.next_edition(copy_date) + timedelta(days=self.grace_days)

    def describe(self) -> str:
        if self.max_age_days is not None:
            return f"a copy at most {self.max_age_days} days old"
        if self.published == QUARTERLY:
            schedule = "a quarterly edition (Jan 1, Apr 1, Jul 1, Oct 1)"
        elif self.published == MONTHLY:
            schedule = "a monthly edition (the 1st)"
        else:
            schedule = "editions on " + ", ".join(f"{date(2000, m, d):%b} {d}" for m, d in self.published)
        grace = f"in use within {self.grace_days} days of its publication" if self.grace_days else "in use from its publication"
        return f"{schedule}, {grace}"


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
    # List name ("federal", "state:TX", "litigator") -> how fresh a loaded copy must be.
    refresh: Mapping[str, RefreshRule] = field(default_factory=dict)
    # `dialer dnc status` and the supervisor's alerts say "due soon" this many days ahead.
    refresh_warning_days: int = 14

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
    if not isinstance(state, str) or state not in US_STATE_CODES:
        # A misspelt code would be a rule that never applies: refused at load instead.
        raise RuleDataError(f"{where}: 'state' must be a two-letter US state or territory code, got {state!r}")
    where = f"rules[{index}] ({state})"
    confidence = _confidence(raw.get("confidence"), where)
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
        if not isinstance(c, dict):
            raise RuleDataError(f"{where}.cap: must be a mapping with max_attempts, window_hours and a citation")
        # At least 1 each: a zero-hour window would count no attempt and never block. At most
        # MAX_CAP_WINDOW_HOURS: the attempt store keeps (and fetches) no older attempts, so a
        # longer window would be undercounted.
        window_hours = _whole(c, "window_hours", where + ".cap", low=1)
        if window_hours > MAX_CAP_WINDOW_HOURS:
            raise RuleDataError(f"{where}.cap: window_hours {window_hours} is longer than the "
                                f"{MAX_CAP_WINDOW_HOURS} h of attempts the store keeps")
        cap = CapRule(_whole(c, "max_attempts", where + ".cap", low=1), window_hours, _text(c, "citation", where + ".cap"))
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
    effective_from = _date(raw.get("effective_from"), where + ".effective_from")
    effective_to = _date(raw.get("effective_to"), where + ".effective_to")
    if effective_from is not None and effective_to is not None and not effective_from < effective_to:
        raise RuleDataError(f"{where}: effective_from {effective_from} is not before effective_to {effective_to}")
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
        effective_from=effective_from,
        effective_to=effective_to,
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


def _confidence(raw: object, where: str) -> Confidence:
    try:
        return Confidence(str(raw))
    except ValueError:
        raise RuleDataError(f"{where}: confidence must be high, medium or low") from None


def _whole(raw: Mapping[str, Any], key: str, where: str, *, low: int = 0) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RuleDataError(f"{where}: '{key}' must be a whole number of at least {low}")
    return value


def _published(raw: object, where: str) -> tuple[tuple[int, int], ...]:
    if raw == "quarterly":
        return QUARTERLY
    if raw == "monthly":
        return MONTHLY
    if not isinstance(raw, list) or not raw:
        raise RuleDataError(f"{where}: 'published' must be quarterly, monthly or a list of 'MM-DD' edition dates")
    editions = []
    for item in raw:
        try:
            month, day = (int(part) for part in str(item).split("-"))
            date(2001, month, day)  # a day every year has (no Feb 29)
        except ValueError:
            raise RuleDataError(f"{where}: edition date {item!r} is not an 'MM-DD' date") from None
        editions.append((month, day))
    return tuple(sorted(set(editions)))


def parse_refresh(raw: object, where: str) -> RefreshRule:
    """`{max_age_days: N, citation}` or `{published: quarterly|monthly|[MM-DD...], grace_days: N,
    citation, confidence}` -> RefreshRule."""
    if not isinstance(raw, dict):
        raise RuleDataError(f"{where}: a refresh rule (max_age_days or published + grace_days) is required")
    citation = _text(raw, "citation", where)
    confidence = _confidence(raw.get("confidence", "high"), where)
    if ("max_age_days" in raw) == ("published" in raw):
        raise RuleDataError(f"{where}: give exactly one of max_age_days or published")
    if "max_age_days" in raw:
        return RefreshRule(citation, confidence, max_age_days=_whole(raw, "max_age_days", where, low=1))
    grace = _whole(raw, "grace_days", where) if "grace_days" in raw else 0
    return RefreshRule(citation, confidence, published=_published(raw["published"], where), grace_days=grace)


def _state_lists(raw: object) -> tuple[dict[str, str], dict[str, RefreshRule]]:
    """`state_dnc_lists`: state -> {citation, refresh}."""
    if not isinstance(raw, dict):
        raise RuleDataError("state_dnc_lists must be a mapping of state codes")
    citations: dict[str, str] = {}
    refresh: dict[str, RefreshRule] = {}
    for state, row in raw.items():
        where = f"state_dnc_lists.{state}"
        if not isinstance(state, str) or state not in US_STATE_CODES:
            raise RuleDataError(f"{where}: the key must be a two-letter US state or territory code")
        if not isinstance(row, dict):
            raise RuleDataError(f"{where}: must be a mapping with a citation and a refresh rule")
        citations[state] = _text(row, "citation", where)
        refresh[f"state:{state}"] = parse_refresh(row.get("refresh"), f"{where}.refresh")
    return citations, refresh


def _check_no_holes(rules: tuple[StateRule, ...]) -> None:
    """Refuse a state whose unflagged rules leave days uncovered between them (one row ending
    2026-12-31 and its successor starting 2027-01-02): on such a day the state would silently
    fall back to the federal window. A rule that ends with no successor is a repeal, and allowed."""
    by_state: dict[str, list[StateRule]] = {}
    for rule in rules:
        if rule.flag is None:
            by_state.setdefault(rule.state, []).append(rule)
    for state, rows in by_state.items():
        covered_to: date | None = None  # the first day not yet covered; None: open-ended so far
        started = False
        for rule in sorted(rows, key=lambda r: r.effective_from or date.min):
            begins = rule.effective_from or date.min
            if started and covered_to is not None and begins > covered_to:
                raise RuleDataError(f"rules for {state} leave {covered_to} to {begins - timedelta(days=1)} "
                                    "without a rule (a gap; a repeal has no successor)")
            if not started:
                started, covered_to = True, rule.effective_to
            elif covered_to is not None:
                covered_to = None if rule.effective_to is None else max(covered_to, rule.effective_to)


FEDERAL_OPEN, FEDERAL_CLOSE = time(8, 0), time(21, 0)


def _federal_hours(raw: Any) -> WeeklyHours:
    """The federal window as the data gives it, which may narrow 08:00-21:00 but never widen it
    (47 CFR 64.1200(c)(1); 16 CFR 310.4(c)): a typo there would allow calls the law forbids."""
    hours = parse_hours(raw, "federal.hours")
    for day, windows in zip(WEEKDAYS, hours, strict=True):
        for start, end in windows:
            if start < FEDERAL_OPEN or end > FEDERAL_CLOSE:
                raise RuleDataError(f"federal.hours.{day}: {start:%H:%M}-{end:%H:%M} is wider than the law's 08:00-21:00")
    return hours


def parse_rulebook(text: str) -> RuleBook:
    """Parse and validate rule data given as YAML text."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleDataError(f"rule data is not valid YAML: {error}") from None
    try:
        return _parse_rulebook(raw, text)
    except (AttributeError, TypeError, KeyError) as error:
        # A section of the wrong shape (a mapping where a list belongs, a string for a mapping):
        # the same RuleDataError as every other defect, so the runtime starts with the gate
        # blocking everything instead of crashing or half-loading.
        raise RuleDataError(f"rule data has a section of the wrong shape ({type(error).__name__}: {error})") from None


def _parse_rulebook(raw: Any, text: str) -> RuleBook:
    if not isinstance(raw, dict) or "federal" not in raw or "rules" not in raw:
        raise RuleDataError("rule data must have 'federal' and 'rules' sections")
    fed = raw["federal"]
    if not isinstance(fed, dict):
        raise RuleDataError("federal must be a mapping")
    federal = FederalRules(
        hours=_federal_hours(fed.get("hours")),
        citation=_text(fed, "citation", "federal"),
        registry_max_age_days=_whole(fed, "registry_max_age_days", "federal", low=1) if "registry_max_age_days" in fed else 31,
        registry_citation=_text(fed, "registry_citation", "federal"),
        dnc_citation=_text(fed, "dnc_citation", "federal"),
        internal_dnc_citation=_text(fed, "internal_dnc_citation", "federal"),
        opt_out_citation=_text(fed, "opt_out_citation", "federal"),
        litigator_citation=_text(fed, "litigator_citation", "federal"),
        pewc_citation=_text(fed, "pewc_citation", "federal"),
        ptc_citation=_text(fed, "ptc_citation", "federal"),
        ptc_valid_months=_whole(fed, "ptc_valid_months", "federal", low=1) if "ptc_valid_months" in fed else 12,
        texts_citation=str(fed.get("texts_citation") or DEFAULT_TEXTS_CITATION),
        service_text_citation=str(fed.get("service_text_citation") or DEFAULT_SERVICE_TEXT_CITATION),
    )
    sets = raw.get("holiday_sets") or {}
    rules = tuple(_parse_rule(rule, sets, index) for index, rule in enumerate(raw["rules"] or ()))
    _check_no_holes(rules)
    lists, refresh = _state_lists(raw.get("state_dnc_lists") or {})
    refresh["federal"] = RefreshRule(federal.registry_citation, max_age_days=federal.registry_max_age_days)
    freshness = raw.get("list_freshness") or {}
    if not isinstance(freshness, dict):
        raise RuleDataError("list_freshness must be a mapping")
    if "litigator" in freshness:
        refresh["litigator"] = parse_refresh(freshness["litigator"], "list_freshness.litigator")
    warning_days = _whole(freshness, "warn_days", "list_freshness") if "warn_days" in freshness else 14
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
        refresh=refresh,
        refresh_warning_days=warning_days,
    )


def load_rulebook(path: Path | None = None) -> RuleBook:
    """Load the shipped rule data (or another file with the same layout)."""
    path = path or DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RuleDataError(f"cannot read rule data {path}: {error.strerror}") from None
    return parse_rulebook(text)
