"""The agency's numbers, computed in SQL from the CRM tables (a library: no runtime, no HTTP).

Every KPI is defined in docs/reports.md; in short, over a period [start, end) in the agency's
time zone:

- from `calls` (by `requested_at`): dials (outbound calls placed), answered (the lead's line
  answered), people (answered by a person: AMD said HUMAN or NOTSURE), connected (a person and an
  agent bridged), abandoned, inbound calls, talk time, handled calls (bridged with an agent);
- from `dispositions` (by `disposed_at`): contacts (calls whose disposition says a conversation
  with the lead took place), appointments set and held, applications written (App Pending),
  policies issued (Closes), and the wrap-up time after handled calls (for the handle time);
  each call counts once per KPI, at its earliest disposition with that KPI (for that
  disposition's agent and campaign);
- from `agent_state_changes`: seconds in each agent state (occupancy), click-to-call-only
  agents included (dialer.click_to_call.presence);
- from `leads` and `calls`: speed-to-lead (a lead not from a list import, to its first dial).

A report groups them by agent, by campaign or for the whole agency. The calls', the
dispositions' and the ended agent states' figures are read from the hourly roll-ups of
migration 0019 (kept by triggers in the same transaction as the rows) for the whole UTC hours
of the period, and from the raw rows through the indexes of migrations 0017 and 0019 for what
is left (the edges of a period in a zone with a half-hour offset, the states still open);
speed-to-lead from each lead's first dial and the pipeline board from each lead's latest stage
move, both kept on the lead by the triggers of migration 0020.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from compliance_rules.telemarketing import LIVE_ANSWER_AMD_RESULTS
from crm_bridge.dispositions import FORWARD_LINE, STAGE_LABELS, DispositionCode, PipelineStage

# A state row with no later row (a controller that died) counts for at most this long.
OPEN_STATE_CAP_SECONDS = 12 * 3600.0
LONGEST_RANGE_DAYS = 366
# Agent states that are handling work, and those that are available for it (occupancy).
BUSY_STATES = ("reserved", "on_call", "wrap_up")
AVAILABLE_STATES = ("ready",)


class Fetcher(Protocol):
    """What the reports read with: an asyncpg pool or connection (or the store's guarded pool)."""

    async def fetch(self, query: str, *args: object) -> list[Any]: ...


class PeriodName(StrEnum):
    TODAY = "today"
    WEEK = "week"
    MONTH = "month"
    RANGE = "range"


class GroupBy(StrEnum):
    AGENCY = "agency"
    AGENT = "agent"
    CAMPAIGN = "campaign"


class ReportError(ValueError):
    """A report asked for something it cannot answer; `field` names the parameter."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, and the local days it covers in the agency's zone."""

    name: PeriodName
    timezone: str
    start: datetime
    end: datetime
    first_day: date
    last_day: date

    @property
    def bucket(self) -> str:
        """The time series' step: hours for one day, days otherwise."""
        return "hour" if self.first_day == self.last_day else "day"


def period_of(name: PeriodName | str, timezone: str, now: datetime, *, first: date | None = None,
              last: date | None = None) -> Period:
    """The period `name` around `now` in `timezone` (`range`: from `first` to `last`, both
    included, local days). Weeks start on Monday. Raises `ReportError`."""
    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError):
        raise ReportError(f"unknown time zone {timezone!r}", "tz") from None
    name = PeriodName(name)
    today = now.astimezone(zone).date()
    if name is PeriodName.TODAY:
        first_day, last_day = today, today
    elif name is PeriodName.WEEK:
        first_day = today - timedelta(days=today.weekday())
        last_day = first_day + timedelta(days=6)
    elif name is PeriodName.MONTH:
        first_day = today.replace(day=1)
        last_day = (first_day + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    else:
        if first is None:
            raise ReportError("a range needs from (a local date, YYYY-MM-DD)", "from")
        first_day, last_day = first, last or first
        if last_day < first_day:
            raise ReportError("to is before from", "to")
        if (last_day - first_day).days >= LONGEST_RANGE_DAYS:
            raise ReportError(f"a range covers at most {LONGEST_RANGE_DAYS} days", "to")
    start = datetime.combine(first_day, time(0), zone).astimezone(UTC)
    end = datetime.combine(last_day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return Period(name, timezone, start, end, first_day, last_day)


# ---- the KPIs ------------------------------------------------------------------------------------
@dataclass
class Kpis:
    """One row of a report (an agent, a campaign, the agency, or one time bucket)."""

    key: str
    dials: int = 0
    answered: int = 0
    people: int = 0
    connected: int = 0
    abandoned: int = 0
    inbound: int = 0
    handled: int = 0
    talk_seconds: float = 0.0
    wrap_seconds: float = 0.0
    contacts: int = 0
    appts_set: int = 0
    appts_held: int = 0
    app_pending: int = 0
    issued: int = 0
    busy_seconds: float = 0.0
    available_seconds: float = 0.0
    paused_seconds: float = 0.0
    new_leads: int = 0
    leads_dialed: int = 0
    speed_to_lead_median: float | None = None
    speed_to_lead_average: float | None = None
    rates: dict[str, float | None] = field(default_factory=dict)

    def finish(self) -> Kpis:
        """Fill in the derived figures (rates, handle time, occupancy)."""
        self.rates = {
            "contact_rate": _ratio(self.contacts, self.dials),
            "appt_set_rate": _ratio(self.appts_set, self.contacts),
            "appt_held_rate": _ratio(self.appts_held, self.appts_set),
            "app_rate": _ratio(self.app_pending, self.appts_held),
            "close_rate": _ratio(self.issued, self.app_pending),
            "contact_to_close": _ratio(self.issued, self.contacts),
            "answer_rate": _ratio(self.answered, self.dials),
            "abandon_rate": _ratio(self.abandoned, self.people),
            "occupancy": _ratio(self.busy_seconds, self.busy_seconds + self.available_seconds),
        }
        return self

    @property
    def average_handle_seconds(self) -> float | None:
        return None if self.handled == 0 else round((self.talk_seconds + self.wrap_seconds) / self.handled, 3)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "dials": self.dials, "answered": self.answered, "people": self.people,
            "connected": self.connected, "abandoned": self.abandoned, "inbound": self.inbound,
            "contacts": self.contacts, "appts_set": self.appts_set, "appts_held": self.appts_held,
            "app_pending": self.app_pending, "issued": self.issued, "handled": self.handled,
            "talk_seconds": round(self.talk_seconds, 3), "wrap_seconds": round(self.wrap_seconds, 3),
            "average_handle_seconds": self.average_handle_seconds,
            "busy_seconds": round(self.busy_seconds, 3), "available_seconds": round(self.available_seconds, 3),
            "paused_seconds": round(self.paused_seconds, 3),
            "new_leads": self.new_leads, "leads_dialed": self.leads_dialed,
            "speed_to_lead_median_seconds": self.speed_to_lead_median,
            "speed_to_lead_average_seconds": self.speed_to_lead_average,
            **{name: None if value is None else round(value, 6) for name, value in self.rates.items()},
        }


def _ratio(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole


CSV_COLUMNS = ("key", "dials", "answered", "people", "connected", "abandoned", "inbound", "contacts", "appts_set",
               "appts_held", "app_pending", "issued", "handled", "talk_seconds", "wrap_seconds",
               "average_handle_seconds", "busy_seconds", "available_seconds", "paused_seconds", "occupancy",
               "new_leads", "leads_dialed", "speed_to_lead_median_seconds", "speed_to_lead_average_seconds",
               "contact_rate", "appt_set_rate", "appt_held_rate", "app_rate", "close_rate", "contact_to_close",
               "answer_rate", "abandon_rate")


def as_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A table as CSV (RFC 4180), the header first; a text that a spreadsheet would run as a
    formula is prefixed with a quote."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in columns])
    return out.getvalue()


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


# ---- the queries ---------------------------------------------------------------------------------
_KEY_COLUMN = {GroupBy.AGENCY: "'agency'", GroupBy.AGENT: "agent_id", GroupBy.CAMPAIGN: "campaign_id"}


@dataclass(frozen=True)
class Scope:
    """Which rows a report counts: all, or one agent's, or one campaign's."""

    agent_id: str | None = None
    campaign_id: str | None = None


def whole_hours(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole UTC hours [a, b) inside [start, end), which the roll-ups answer; the rest of the
    period ([start, a) and [b, end)) is read from raw rows. No whole hour: (end, end)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    first = epoch + hour * -((epoch - start) // hour)  # start rounded up to the hour
    last = epoch + ((end - epoch) // hour) * hour  # end rounded down
    return (first, last) if first < last else (end, end)


# Parameters of the KPI queries: $1, $2 the period; $3, $4 the scope; $5, $6 its whole hours.
_SCOPE = "($3::text IS NULL OR agent_id = $3) AND ($4::text IS NULL OR campaign_id = $4)"
_ROLLUP_HOURS = f"hour >= $5 AND hour < $6 AND {_SCOPE}"


def _edges(column: str) -> str:
    return f"(({column} >= $1 AND {column} < $5) OR ({column} >= $6 AND {column} < $2)) AND {_SCOPE}"


_CALL_SUMS = ("dials", "answered", "people", "connected", "abandoned", "inbound", "handled", "talk_seconds")


def _calls_sql(key: str) -> str:
    # The whole hours from call_rollups (migration 0019), the edges from calls: the same sums.
    raw = (
        "SELECT agent_id, campaign_id, 1 AS calls, (direction = 'outbound')::int AS dials, "
        "(direction = 'outbound' AND lead_answered_at IS NOT NULL)::int AS answered, "
        "(direction = 'outbound' AND report_live_answer(amd_result))::int AS people, "
        "(bridged_at IS NOT NULL)::int AS connected, (abandoned AND report_live_answer(amd_result))::int AS abandoned, "
        "(direction = 'inbound')::int AS inbound, (bridged_at IS NOT NULL AND agent_id IS NOT NULL)::int AS handled, "
        "CASE WHEN bridged_at IS NOT NULL AND agent_id IS NOT NULL THEN talk_seconds::numeric END AS talk_seconds "
        f"FROM calls WHERE {_edges('requested_at')}"
    )
    sums = ", ".join(f"coalesce(sum({name}), 0) AS {name}" for name in _CALL_SUMS)
    return (
        f"SELECT {key} AS key, {sums} FROM (SELECT agent_id, campaign_id, calls, {', '.join(_CALL_SUMS)} "
        f"FROM call_rollups WHERE {_ROLLUP_HOURS} UNION ALL {raw}) c GROUP BY 1 HAVING sum(calls) > 0"
    )


_FUNNEL = ("contacts", "appts_set", "appts_held", "app_pending", "issued")


def _raw_dispositions() -> str:
    """SQL over the period's edges: agent_id, campaign_id, at, and the counts the roll-ups keep
    (a row per disposition, and a row per disposition that is its call's earliest with a KPI:
    docs/reports.md). The earliest is found by one anti-join, not a lookup per row."""
    zeros = ", ".join(f"0 AS {name}" for name in _FUNNEL)
    firsts = ", ".join(f"(k.kpi = '{name}')::int" for name in _FUNNEL)
    return (
        f"SELECT agent_id, campaign_id, disposed_at AS at, 1 AS dispositions, {zeros} FROM dispositions "
        f"WHERE {_edges('disposed_at')} "
        f"UNION ALL SELECT d.agent_id, d.campaign_id, d.disposed_at, 0, {firsts} FROM dispositions d "
        "CROSS JOIN LATERAL unnest(report_disposition_kpis(d.code)) AS k(kpi) "
        f"WHERE {_edges('disposed_at')} AND NOT EXISTS (SELECT 1 FROM dispositions p WHERE p.call_id = d.call_id "
        "AND (p.disposed_at, p.disposition_id) < (d.disposed_at, d.disposition_id) "
        "AND k.kpi = ANY(report_disposition_kpis(p.code)))"
    )


def _dispositions_sql(key: str) -> str:
    raw = f"SELECT agent_id, campaign_id, dispositions, {', '.join(_FUNNEL)} FROM ({_raw_dispositions()}) r"
    sums = ", ".join(f"coalesce(sum({name}), 0) AS {name}" for name in _FUNNEL)
    return (
        f"SELECT {key} AS key, {sums} FROM (SELECT agent_id, campaign_id, dispositions, {', '.join(_FUNNEL)} "
        f"FROM disposition_rollups WHERE {_ROLLUP_HOURS} UNION ALL {raw}) d GROUP BY 1 HAVING sum(dispositions) > 0"
    )


def _states_sql(group: GroupBy) -> str:
    key = {GroupBy.AGENCY: "'agency'", GroupBy.AGENT: "s.agent_id", GroupBy.CAMPAIGN: "c.campaign_id"}[group]
    # An agent in several campaigns counts its time in each campaign's row (campaign rows do not
    # add up to the agency's).
    unnest = "CROSS JOIN LATERAL unnest(s.campaign_ids) AS c(campaign_id)" if group is GroupBy.CAMPAIGN else ""
    cap = "make_interval(secs => $5::double precision)"

    def window(low: str, high: str, only_open: bool) -> str:
        # Each state lasts until the session's next change (`ended_at`, or now), capped, clipped
        # to the window [low, high).
        return (
            f"SELECT agent_id, state, campaign_ids, GREATEST(since, {low}) AS a, "
            f"LEAST(coalesce(ended_at, $6::timestamptz), {high}, since + {cap}) AS b FROM agent_state_changes "
            f"WHERE since < {high} AND since >= {low} - {cap} AND ($3::text IS NULL OR agent_id = $3)"
            + (" AND ended_at IS NULL" if only_open else "")
        )

    # The whole hours [$9, $10) of ended states from agent_state_rollups (migration 0019); the
    # edges of the period, and the states still open, from the raw rows.
    raw = " UNION ALL ".join((window("$1::timestamptz", "$9::timestamptz", False),
                              window("$10::timestamptz", "$2::timestamptz", False),
                              window("$9::timestamptz", "$10::timestamptz", True)))
    per_row = (
        "SELECT agent_id, campaign_ids, seconds, CASE WHEN state = ANY($7::text[]) THEN seconds ELSE 0 END AS busy, "
        "CASE WHEN state = ANY($8::text[]) THEN seconds ELSE 0 END AS available, "
        "CASE WHEN state = 'paused' THEN seconds ELSE 0 END AS paused, "
        "CASE WHEN state = 'wrap_up' THEN seconds ELSE 0 END AS wrap "
        f"FROM (SELECT *, extract(epoch FROM b - a) AS seconds FROM ({raw}) w WHERE b > a) r"
    )
    rollups = (
        "SELECT agent_id, campaign_ids, seconds, busy_seconds AS busy, available_seconds AS available, "
        "paused_seconds AS paused, wrap_seconds AS wrap FROM agent_state_rollups WHERE hour >= $9 AND hour < $10 AND ($3::text IS NULL OR agent_id = $3)"
    )
    return (
        f"SELECT {key} AS key, coalesce(sum(s.busy), 0) AS busy, coalesce(sum(s.available), 0) AS available, "
        "coalesce(sum(s.paused), 0) AS paused, coalesce(sum(s.wrap), 0) AS wrap "
        f"FROM ({rollups} UNION ALL {per_row}) s {unnest} WHERE ($4::text IS NULL OR $4 = ANY(s.campaign_ids)) "
        + ("AND ($4::text IS NULL OR c.campaign_id = $4) " if group is GroupBy.CAMPAIGN else "")
        + "GROUP BY 1 HAVING sum(s.seconds) > 0"
    )


def _speed_sql(key: str, *, maintained: bool) -> str:
    """Leads that came in (not from a list import) during the period, and their first dial:
    the earliest outbound call requested at or after the lead's creation (equal times: by call
    id). `maintained`: as migration 0020's triggers keep it on the lead (the month's leads
    alone are read); otherwise from `calls` (the same answer, a lookup per lead)."""
    if maintained:
        firsts = (
            "SELECT created_at, first_dial_at AS requested_at, first_dial_agent_id AS agent_id, "
            "first_dial_campaign_id AS campaign_id FROM leads "
            "WHERE created_at >= $1 AND created_at < $2 AND import_id IS NULL"
        )
    else:
        firsts = (
            "SELECT l.created_at, f.requested_at, f.agent_id, f.campaign_id "
            "FROM leads l LEFT JOIN LATERAL (SELECT c.requested_at, c.agent_id, c.campaign_id FROM calls c "
            "WHERE c.lead_id = l.lead_id AND c.direction = 'outbound' AND c.requested_at >= l.created_at "
            "ORDER BY c.requested_at, c.call_id LIMIT 1) f ON true "
            "WHERE l.created_at >= $1 AND l.created_at < $2 AND l.import_id IS NULL"
        )
    return (
        f"WITH firsts AS ({firsts}) "
        f"SELECT {key} AS key, count(*) AS new_leads, count(requested_at) AS leads_dialed, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM requested_at - created_at)) "
        "AS median, avg(extract(epoch FROM requested_at - created_at)) AS average "
        "FROM firsts WHERE ($3::text IS NULL OR agent_id = $3) AND ($4::text IS NULL OR campaign_id = $4) "
        "GROUP BY 1"
    )


async def kpis(db: Fetcher, period: Period, group: GroupBy, scope: Scope = Scope(), *,
               now: datetime | None = None, rollups: bool = True) -> list[Kpis]:
    """One row per agent / campaign (or one for the agency) with any activity in the period,
    sorted by key; the agency row is always there. The calls' and dispositions' figures come
    from the hourly roll-ups for the period's whole hours and from raw rows for the rest (with
    `rollups=False`, from raw rows only: the same numbers, slower). Speed-to-lead comes from
    each lead's first dial as migration 0020 keeps it (`rollups=False`: from `calls`)."""
    key = _KEY_COLUMN[group]
    base: tuple[object, ...] = (period.start, period.end, scope.agent_id, scope.campaign_id)
    hours = whole_hours(period.start, period.end) if rollups else (period.end, period.end)
    rows: dict[str, Kpis] = {}

    def row(found: Mapping[str, Any]) -> Kpis:
        name = found["key"] if found["key"] is not None else ""
        return rows.setdefault(name, Kpis(name))

    instant = now or datetime.now(UTC)
    queries: list[tuple[str, tuple[object, ...]]] = [
        (_calls_sql(key), (*base, *hours)),
        (_dispositions_sql(key), (*base, *hours)),
        (_states_sql(group), (*base, OPEN_STATE_CAP_SECONDS, instant, list(BUSY_STATES), list(AVAILABLE_STATES),
                              *hours)),
        (_speed_sql(key, maintained=rollups), base),
    ]
    if hasattr(db, "acquire"):
        # A pool: the four reads run at once, each on its own connection.
        answers = await asyncio.gather(*(db.fetch(sql, *args) for sql, args in queries))
    else:
        answers = [await db.fetch(sql, *args) for sql, args in queries]
    calls, dispositions, states, speed = answers
    for found in calls:
        kpi = row(found)
        kpi.dials, kpi.answered, kpi.people = int(found["dials"]), int(found["answered"]), int(found["people"])
        kpi.connected, kpi.abandoned = int(found["connected"]), int(found["abandoned"])
        kpi.inbound, kpi.handled = int(found["inbound"]), int(found["handled"])
        kpi.talk_seconds = float(found["talk_seconds"])
    for found in dispositions:
        kpi = row(found)
        kpi.contacts, kpi.appts_set = int(found["contacts"]), int(found["appts_set"])
        kpi.appts_held, kpi.app_pending, kpi.issued = (int(found["appts_held"]), int(found["app_pending"]),
                                                       int(found["issued"]))
    for found in states:
        kpi = row(found)
        kpi.busy_seconds, kpi.available_seconds = float(found["busy"]), float(found["available"])
        kpi.paused_seconds, kpi.wrap_seconds = float(found["paused"]), float(found["wrap"])
    for found in speed:
        kpi = row(found)
        kpi.new_leads, kpi.leads_dialed = found["new_leads"], found["leads_dialed"]
        kpi.speed_to_lead_median = _seconds(found["median"])
        kpi.speed_to_lead_average = _seconds(found["average"])
    if group is GroupBy.AGENCY:
        rows.setdefault("agency", Kpis("agency"))
    return [rows[name].finish() for name in sorted(rows)]


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else round(number, 3)


async def series(db: Fetcher, period: Period, scope: Scope = Scope(), *, rollups: bool = True
                 ) -> list[dict[str, Any]]:
    """Dials, connected, contacts and the funnel per hour (one day) or per local day, every
    bucket of the period listed (zeros included), oldest first (`rollups=False`: from raw rows
    only)."""
    zone = ZoneInfo(period.timezone)
    starts: list[datetime] = []
    cursor = datetime.combine(period.first_day, time(0))
    stop = datetime.combine(period.last_day + timedelta(days=1), time(0))
    while cursor < stop:
        starts.append(cursor)
        cursor += timedelta(hours=1) if period.bucket == "hour" else timedelta(days=1)
    # Each row's bucket by a binary search over the buckets' starts (UTC epochs, daylight saving
    # included), instead of a time zone conversion per row.
    edges = [start.replace(tzinfo=zone).timestamp() for start in starts]
    base: tuple[object, ...] = (period.start, period.end, scope.agent_id, scope.campaign_id)
    # The hourly roll-ups fill the buckets when every bucket starts on a UTC hour (any zone with
    # whole-hour offsets); otherwise an hour would straddle two buckets, and raw rows answer.
    aligned = rollups and all(edge % 3600 == 0 for edge in edges) and period.end.timestamp() % 3600 == 0
    hours = whole_hours(period.start, period.end) if aligned else (period.end, period.end)
    calls_sql = (
        "SELECT width_bucket(extract(epoch FROM at)::float8, $7::float8[]) AS bucket, "
        "coalesce(sum(dials), 0) AS dials, coalesce(sum(connected), 0) AS connected FROM ("
        f"SELECT hour AS at, dials, connected FROM call_rollups WHERE {_ROLLUP_HOURS} UNION ALL "
        "SELECT requested_at, (direction = 'outbound')::int, (bridged_at IS NOT NULL)::int FROM calls "
        f"WHERE {_edges('requested_at')}) c GROUP BY 1")
    disposed_sql = (
        "SELECT width_bucket(extract(epoch FROM at)::float8, $7::float8[]) AS bucket, "
        + ", ".join(f"coalesce(sum({name}), 0) AS {name}" for name in _FUNNEL)
        + f" FROM (SELECT hour AS at, {', '.join(_FUNNEL)} FROM disposition_rollups WHERE {_ROLLUP_HOURS} "
        f"UNION ALL SELECT at, {', '.join(_FUNNEL)} FROM ({_raw_dispositions()}) r) d GROUP BY 1")
    args = (*base, *hours, edges)
    if hasattr(db, "acquire"):  # a pool: both reads at once
        calls, disposed = await asyncio.gather(db.fetch(calls_sql, *args), db.fetch(disposed_sql, *args))
    else:
        calls = await db.fetch(calls_sql, *args)
        disposed = await db.fetch(disposed_sql, *args)
    names = ("dials", "connected", "contacts", "appts_set", "appts_held", "app_pending", "issued")
    buckets = [{"at": start.isoformat(), **dict.fromkeys(names, 0)} for start in starts]
    for found in (*calls, *disposed):
        index = int(found["bucket"]) - 1
        if 0 <= index < len(buckets):
            buckets[index].update({name: int(found[name]) for name in names if name in found.keys()})
    return buckets


# ---- the pipeline board ----------------------------------------------------------------------
BOARD_STAGES: tuple[PipelineStage, ...] = (*FORWARD_LINE, PipelineStage.NURTURE, PipelineStage.LOST)


@dataclass(frozen=True)
class BoardLead:
    lead_id: str
    name: str
    stage: PipelineStage
    entered_at: datetime
    age_seconds: float
    owner_agent_id: str | None
    state: str | None


@dataclass(frozen=True)
class BoardColumn:
    stage: PipelineStage
    label: str
    count: int
    average_age_seconds: float | None
    oldest_age_seconds: float | None
    leads: list[BoardLead]


_BOARD_FILTER = ("($1::text IS NULL OR EXISTS (SELECT 1 FROM campaign_leads cl WHERE cl.campaign_id = $1 "
                 "AND cl.lead_id = l.lead_id)) AND ($2::text IS NULL OR l.owner_agent_id = $2)")


def _board_raw_sql() -> str:
    # Each lead's latest stage move from the dispositions, grouped in one pass over the partial
    # index of moves; every lead of the board sorted by its stage and age.
    return (
        "WITH board AS (SELECT l.lead_id, l.first_name, l.last_name, l.phones, l.state, l.pipeline_stage, "
        "l.owner_agent_id, coalesce(m.moved_at, l.created_at) AS entered_at FROM leads l "
        "LEFT JOIN (SELECT lead_id, max(disposed_at) AS moved_at FROM dispositions "
        "WHERE stage_after IS DISTINCT FROM stage_before GROUP BY lead_id) m ON m.lead_id = l.lead_id "
        f"WHERE {_BOARD_FILTER}), "
        "ranked AS (SELECT *, row_number() OVER (PARTITION BY pipeline_stage ORDER BY entered_at DESC, lead_id) "
        "AS rank, count(*) OVER (PARTITION BY pipeline_stage) AS total, "
        "avg(extract(epoch FROM $3::timestamptz - entered_at)) OVER (PARTITION BY pipeline_stage) AS average, "
        "max(extract(epoch FROM $3::timestamptz - entered_at)) OVER (PARTITION BY pipeline_stage) AS oldest "
        "FROM board) "
        "SELECT * FROM ranked WHERE rank <= $4 ORDER BY pipeline_stage, rank"
    )


def _board_kept_sql() -> str:
    # The latest move as migration 0020 keeps it on the lead: each stage's figures in one pass
    # over leads_board_idx, and its `per_stage` newest leads read off that index in order.
    entered = "coalesce(l.stage_moved_at, l.created_at)"
    return (
        "WITH figures AS (SELECT l.pipeline_stage, count(*) AS total, "
        f"avg(extract(epoch FROM $3::timestamptz - {entered})) AS average, "
        f"max(extract(epoch FROM $3::timestamptz - {entered})) AS oldest FROM leads l WHERE {_BOARD_FILTER} "
        "GROUP BY 1) "
        "SELECT f.total, f.average, f.oldest, t.* FROM figures f CROSS JOIN LATERAL ("
        "SELECT l.lead_id, l.first_name, l.last_name, l.phones, l.state, l.pipeline_stage, l.owner_agent_id, "
        f"{entered} AS entered_at, row_number() OVER (ORDER BY {entered} DESC, l.lead_id) AS rank FROM leads l "
        f"WHERE l.pipeline_stage = f.pipeline_stage AND {_BOARD_FILTER} "
        f"ORDER BY {entered} DESC, l.lead_id LIMIT $4) t ORDER BY t.pipeline_stage, t.rank"
    )


async def pipeline(db: Fetcher, now: datetime, *, campaign_id: str | None = None, agent_id: str | None = None,
                   per_stage: int = 50, kept: bool = True) -> list[BoardColumn]:
    """Leads per stage with their age in it (since the disposition that moved them there, or
    since they were created), the most recently moved `per_stage` leads of each stage listed.
    The latest move is read as migration 0020 keeps it on the lead (`kept=False`: from the
    dispositions, the same answer, slower)."""
    found = await db.fetch(_board_kept_sql() if kept else _board_raw_sql(), campaign_id, agent_id, now, per_stage)
    columns = {stage: BoardColumn(stage, STAGE_LABELS[stage], 0, None, None, []) for stage in BOARD_STAGES}
    for row in found:
        stage = PipelineStage(row["pipeline_stage"])
        column = columns[stage]
        if not column.leads:
            columns[stage] = column = BoardColumn(stage, column.label, int(row["total"]), _seconds(row["average"]),
                                                  _seconds(row["oldest"]), [])
        name = " ".join(part for part in (row["first_name"], row["last_name"]) if part) or (
            row["phones"][0] if row["phones"] else row["lead_id"])
        column.leads.append(BoardLead(row["lead_id"], name, stage, row["entered_at"],
                                      max(0.0, (now - row["entered_at"]).total_seconds()),
                                      row["owner_agent_id"], row["state"]))
    return [columns[stage] for stage in BOARD_STAGES]


def code_names() -> dict[str, str]:
    """Every disposition code, for the docs and the console's filters."""
    return {code.value: code.value.replace("_", " ") for code in DispositionCode}


# ---- the wallboard's database figures --------------------------------------------------------------
ABANDON_WINDOW_DAYS = 30


async def abandon_30_days(db: Fetcher, now: datetime) -> dict[str, tuple[int, int]]:
    """Per campaign, the rolling 30-day (live answers, abandoned) as the 3 % rule counts them."""
    rows = await db.fetch(
        "SELECT campaign_id, count(*) FILTER (WHERE amd_result = ANY($2::text[])) AS live_answers, "
        "count(*) FILTER (WHERE abandoned AND amd_result = ANY($2::text[])) AS abandoned "
        "FROM calls WHERE requested_at >= $1 AND direction = 'outbound' AND campaign_id IS NOT NULL GROUP BY 1",
        now - timedelta(days=ABANDON_WINDOW_DAYS), sorted(LIVE_ANSWER_AMD_RESULTS))
    return {row["campaign_id"]: (int(row["live_answers"]), int(row["abandoned"])) for row in rows}


async def leads_left(db: Fetcher, now: datetime) -> dict[str, dict[str, int]]:
    """Per campaign, its leads by status: due now, scheduled later, callbacks, done."""
    rows = await db.fetch(
        "SELECT campaign_id, count(*) FILTER (WHERE NOT done AND callback_at IS NULL "
        "AND (next_attempt_at IS NULL OR next_attempt_at <= $1)) AS due, "
        "count(*) FILTER (WHERE NOT done AND callback_at IS NULL AND next_attempt_at > $1) AS scheduled, "
        "count(*) FILTER (WHERE NOT done AND callback_at IS NOT NULL) AS callback, "
        "count(*) FILTER (WHERE done) AS done FROM campaign_leads GROUP BY 1", now)
    return {row["campaign_id"]: {name: int(row[name]) for name in ("due", "scheduled", "callback", "done")}
            for row in rows}


async def recordings_pending(db: Fetcher, now: datetime, *, grace_seconds: float = 120.0) -> int:
    """Connected calls ended more than `grace_seconds` ago (in the last day) whose recording has
    not reached the CRM: the archive is behind or failing."""
    rows = await db.fetch(
        "SELECT count(*) AS pending FROM calls WHERE ended_at < $1 AND ended_at >= $2 "
        "AND bridged_at IS NOT NULL AND recording_id IS NULL",
        now - timedelta(seconds=grace_seconds), now - timedelta(days=1))
    return int(rows[0]["pending"])


async def active_campaigns(db: Fetcher) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT campaign_id, name, dial_mode, abandon_setpoint, max_abandon_rate FROM campaigns WHERE active "
        "ORDER BY campaign_id")
    return [{"campaign_id": row["campaign_id"], "name": row["name"], "dial_mode": row["dial_mode"],
             "abandon_setpoint": None if row["abandon_setpoint"] is None else float(row["abandon_setpoint"]),
             "max_abandon_rate": float(row["max_abandon_rate"])} for row in rows]
