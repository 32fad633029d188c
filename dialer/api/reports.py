"""The agency's numbers as an API (`GET /v1/reports/...`, JSON or CSV): the KPIs for the agency,
per agent and per campaign over today, this week, this month or a range of local days in the
agency's time zone, their time series, and the pipeline board. Computed by `crm_bridge.reports`
from the CRM tables (definitions: docs/reports.md). Staff tokens only (crm, supervisor, admin).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any, Literal

from aiohttp import web
from pydantic import ConfigDict, Field

from crm_bridge import reports
from dialer.api.http import DEPS, STAFF_ROLES, ApiError
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import Day, Id, QueryModel, ResponseModel, UtcTime

routes = RouteTable("reports")
CSV = "text/csv"
FORMATS = ("application/json", CSV)
CSV_ERRORS = {422: "a parameter is invalid (`field` names it): an unknown period or time zone, a range without "
                   "`from`, `to` before `from`, more than 366 days, `from` or `to` with a period other than range"}


class PeriodQuery(QueryModel):
    period: reports.PeriodName = Field(default=reports.PeriodName.TODAY,
                                       description="today, week (Monday on), month, or range (from/to)")
    from_: Day | None = Field(default=None, alias="from", description="range: the first local day (YYYY-MM-DD)")
    to: Day | None = Field(default=None, description="range: the last local day, included (default: from)")
    tz: str | None = Field(default=None, max_length=64,
                           description="an IANA time zone; default: the agency's (settings `agency_timezone`)")
    agent_id: Id | None = Field(default=None, description="count only this agent's calls and dispositions")
    campaign_id: Id | None = Field(default=None, description="count only this campaign's calls and dispositions")
    format: Literal["json", "csv"] = Field(default="json", description="csv: the table as text/csv")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PeriodBody(ResponseModel):
    name: reports.PeriodName
    timezone: str
    start: UtcTime = Field(description="the first local day's midnight, in UTC")
    end: UtcTime = Field(description="the day after the last one's midnight, in UTC (excluded)")
    first_day: date
    last_day: date
    bucket: Literal["hour", "day"] = Field(description="the time series' step")


class KpiRow(ResponseModel):
    """One row of KPIs (docs/reports.md defines each)."""

    key: str = Field(description="the agent's or campaign's id, or `agency`")
    dials: int = Field(description="outbound calls placed (each passed the compliance gate)")
    answered: int = Field(description="outbound calls the lead's line answered (person or machine)")
    people: int = Field(description="answered by a person (AMD: HUMAN or NOTSURE)")
    connected: int = Field(description="calls where the lead and an agent were bridged")
    abandoned: int = Field(description="people not connected to an agent within 2 s (47 CFR 64.1200(a)(7))")
    inbound: int
    contacts: int = Field(description="calls disposed as a conversation with the lead (people reached)")
    appts_set: int
    appts_held: int
    app_pending: int = Field(description="applications written (disposition `sale`)")
    issued: int = Field(description="policies issued (closes)")
    handled: int = Field(description="calls bridged with an agent")
    talk_seconds: float
    wrap_seconds: float = Field(description="from each handled call's end to its first disposition (capped at 900 s)")
    average_handle_seconds: float | None = Field(description="(talk + wrap) / handled")
    busy_seconds: float = Field(description="agents reserved, on a call or in wrap-up")
    available_seconds: float = Field(description="agents ready and waiting")
    paused_seconds: float
    occupancy: float | None = Field(description="busy / (busy + available)")
    new_leads: int = Field(description="leads that came in (not from a list import)")
    leads_dialed: int = Field(description="of those, dialed since")
    speed_to_lead_median_seconds: float | None
    speed_to_lead_average_seconds: float | None
    contact_rate: float | None = Field(description="contacts / dials")
    appt_set_rate: float | None = Field(description="appts set / contacts")
    appt_held_rate: float | None = Field(description="appts held / appts set")
    app_rate: float | None = Field(description="app pending / appts held")
    close_rate: float | None = Field(description="issued / app pending")
    contact_to_close: float | None = Field(description="issued / contacts")
    answer_rate: float | None = Field(description="answered / dials")
    abandon_rate: float | None = Field(description="abandoned / people, in this period (the rule's window is 30 days)")


class SeriesPoint(ResponseModel):
    at: str = Field(description="the bucket's start, local time of the agency (no offset)")
    dials: int
    connected: int
    contacts: int
    appts_set: int
    appts_held: int
    app_pending: int
    issued: int


class KpiReport(ResponseModel):
    period: PeriodBody
    kpis: KpiRow
    series: list[SeriesPoint]


class KpiTable(ResponseModel):
    period: PeriodBody
    rows: list[KpiRow]


class BoardLeadBody(ResponseModel):
    lead_id: str
    name: str
    entered_at: UtcTime
    age_seconds: float
    owner_agent_id: str | None
    state: str | None


class BoardColumnBody(ResponseModel):
    stage: str
    label: str
    count: int
    average_age_seconds: float | None
    oldest_age_seconds: float | None
    leads: list[BoardLeadBody]


class PipelineBody(ResponseModel):
    at: UtcTime
    stages: list[BoardColumnBody]


class PipelineQuery(QueryModel):
    campaign_id: Id | None = Field(default=None, description="leads of this campaign")
    agent_id: Id | None = Field(default=None, description="leads this agent owns")
    per_stage: int = Field(default=50, ge=0, le=500, description="leads listed per stage (most recently moved first)")
    format: Literal["json", "csv"] = "json"


def _period(request: web.Request, query: PeriodQuery) -> reports.Period:
    deps = request.app[DEPS]
    if query.period is not reports.PeriodName.RANGE:
        # Days given for another period would be ignored: a report of today sent back for
        # `?from=2026-11-01&to=2026-11-07` reads as that week's figures.
        for name, day in (("from", query.from_), ("to", query.to)):
            if day is not None:
                raise ApiError(422, "invalid_field", f"{name} is for period=range (the period asked is "
                               f"{query.period.value!r}): add period=range", field=name)
    try:
        return reports.period_of(query.period, query.tz or deps.agency_timezone, deps.clock(),
                                 first=query.from_, last=query.to)
    except reports.ReportError as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field) from None


def _period_body(period: reports.Period) -> PeriodBody:
    return PeriodBody(name=period.name, timezone=period.timezone, start=period.start, end=period.end,
                      first_day=period.first_day, last_day=period.last_day, bucket=period.bucket)  # type: ignore[arg-type]


def _scope(query: PeriodQuery) -> reports.Scope:
    return reports.Scope(agent_id=query.agent_id, campaign_id=query.campaign_id)


def _csv(text: str, name: str) -> web.Response:
    return web.Response(text=text, content_type=CSV, charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"',
                                 "Cache-Control": "no-store"})


async def _table(request: web.Request, query: PeriodQuery, group: reports.GroupBy) -> web.StreamResponse:
    period = _period(request, query)
    rows = await reports.kpis(request.app[DEPS].store.reader, period, group, _scope(query),
                              now=request.app[DEPS].clock())
    shown = [row.as_dict() for row in rows]
    if query.format == "csv":
        return _csv(reports.as_csv(shown, reports.CSV_COLUMNS), f"{group.value}-{period.first_day}-{period.last_day}")
    return Reply(KpiTable(period=_period_body(period), rows=[KpiRow.model_validate(row) for row in shown])).response()


TABLE_ANSWERS = {200: Answer(KpiTable, "one row of KPIs each (`format=csv`: the same as CSV)", content_type=FORMATS)}


@routes.get("/v1/reports/agency", "getAgencyReport",
            "The agency's KPIs for a period and their time series (hours for a day, days otherwise); with agent_id "
            "or campaign_id, that agent's or campaign's dashboard", roles=STAFF_ROLES, query=PeriodQuery,
            responses={200: Answer(KpiReport, "the KPIs and the series (`format=csv`: the series as CSV)",
                                   content_type=FORMATS)}, errors=CSV_ERRORS)
async def agency_report(request: web.Request, query: PeriodQuery) -> web.StreamResponse:
    period = _period(request, query)
    db = request.app[DEPS].store.reader
    rows = await reports.kpis(db, period, reports.GroupBy.AGENCY, _scope(query), now=request.app[DEPS].clock())
    points = await reports.series(db, period, _scope(query))
    if query.format == "csv":
        columns = ("at", "dials", "connected", "contacts", "appts_set", "appts_held", "app_pending", "issued")
        return _csv(reports.as_csv(points, columns), f"series-{period.first_day}-{period.last_day}")
    body = KpiReport(period=_period_body(period), kpis=KpiRow.model_validate(rows[0].as_dict()),
                     series=[SeriesPoint.model_validate(point) for point in points])
    return Reply(body).response()


@routes.get("/v1/reports/agents", "getAgentReports", "KPIs per agent for a period (agents with any activity)",
            roles=STAFF_ROLES, query=PeriodQuery, responses=TABLE_ANSWERS, errors=CSV_ERRORS)
async def agent_reports(request: web.Request, query: PeriodQuery) -> web.StreamResponse:
    return await _table(request, query, reports.GroupBy.AGENT)


@routes.get("/v1/reports/campaigns", "getCampaignReports", "KPIs per campaign for a period",
            roles=STAFF_ROLES, query=PeriodQuery, responses=TABLE_ANSWERS, errors=CSV_ERRORS)
async def campaign_reports(request: web.Request, query: PeriodQuery) -> web.StreamResponse:
    return await _table(request, query, reports.GroupBy.CAMPAIGN)


@routes.get("/v1/reports/pipeline", "getPipelineBoard",
            "The pipeline board: leads per stage (New Lead -> Issued, then Nurture and Lost), their age in the stage "
            "and the most recently moved leads of each", roles=STAFF_ROLES, query=PipelineQuery,
            responses={200: Answer(PipelineBody, "every stage (`format=csv`: one row per lead listed)",
                                   content_type=FORMATS)})
async def pipeline_board(request: web.Request, query: PipelineQuery) -> web.StreamResponse:
    now = request.app[DEPS].clock()
    columns = await reports.pipeline(request.app[DEPS].store.reader, now, campaign_id=query.campaign_id,
                                     agent_id=query.agent_id, per_stage=query.per_stage)
    if query.format == "csv":
        rows: list[dict[str, Any]] = [
            {"stage": column.stage.value, **asdict(lead)} for column in columns for lead in column.leads]
        columns_csv = ("stage", "lead_id", "name", "entered_at", "age_seconds", "owner_agent_id", "state")
        return _csv(reports.as_csv(rows, columns_csv), "pipeline")
    body = PipelineBody(at=now, stages=[
        BoardColumnBody(stage=column.stage.value, label=column.label, count=column.count,
                        average_age_seconds=column.average_age_seconds, oldest_age_seconds=column.oldest_age_seconds,
                        leads=[BoardLeadBody(lead_id=lead.lead_id, name=lead.name, entered_at=lead.entered_at,
                                             age_seconds=round(lead.age_seconds, 3),
                                             owner_agent_id=lead.owner_agent_id, state=lead.state)
                               for lead in column.leads])
        for column in columns])
    return Reply(body).response()
