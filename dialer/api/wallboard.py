"""The supervisor's wallboard in one answer (`GET /v1/wallboard`): every agent with its state and
time in it, its call and pause code; the live calls; inbound callers waiting; per campaign its
dial mode, pacer, lines, hopper, today's dials / answered / connected / abandoned, the rolling
30-day abandon rate against the 3 % line, leads left by status and gate blocks by reason; and the
alerts a supervisor must not miss. Live changes come on `GET /v1/events` (agent states at once,
calls and campaign figures every `interval`); the console re-reads this snapshot every few
seconds for the figures that come from the database.

`alerts()` is pure (thresholds below); the rest reads the runtimes' memory and the CRM.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from compliance_rules.freshness import FreshnessStatus, ListFreshness, describe_list, list_freshness
from compliance_rules.ruleset import RuleBook, RuleDataError, load_rulebook
from crm_bridge import reports
from crm_bridge.store import TokenRole
from dialer.api.http import DEPS
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import ResponseModel, UtcTime
from dialer.campaign.agent import AgentSnapshot, AgentState
from dialer.campaign.api import CAMPAIGNS
from dialer.monitor.api import MONITORS
from dialer.monitor.openapi import LiveCallBody

routes = RouteTable("wallboard")
LEGAL_ABANDON_LIMIT = 0.03
# The 30-day abandon rate "approaching the limit": a warning from here, critical at the limit.
ABANDON_WARNING = 0.025
# Wrap-up overrun: this long past its set end (or, with no set end, this long in wrap-up).
WRAP_OVERRUN_SECONDS = 30.0
WRAP_UNTIMED_SECONDS = 300.0
WAITING_STATES = frozenset({"waiting_agent", "connecting"})


class WallboardAgent(ResponseModel):
    agent_id: str
    state: AgentState
    since: UtcTime
    seconds_in_state: float
    call_id: str | None
    campaign_ids: list[str]
    pause_reason: str | None = Field(description="the pause code, while paused")
    wrap_up_until: UtcTime | None


class WaitingCaller(ResponseModel):
    call_id: str
    campaign_id: str | None
    direction: str
    lead_number: str
    waiting_seconds: float


class AbandonWindow(ResponseModel):
    rate: float = Field(description="abandoned / live answers over the last 30 days (47 CFR 64.1200(a)(7))")
    live_answers: int
    abandoned: int
    limit: float = LEGAL_ABANDON_LIMIT


class TodayFigures(ResponseModel):
    dials: int
    answered: int
    people: int
    connected: int
    abandoned: int


class WallboardCampaign(ResponseModel):
    campaign_id: str
    name: str
    running: bool
    paused: bool
    dial_mode: str
    pacer: str | None = Field(description="the pacer running it (its pacing level), null when not running")
    abandon_setpoint: float | None
    lines: int = Field(description="lines in use (ringing or up)")
    hopper: int = Field(description="leads ready to dial")
    waiting: int = Field(description="answered people waiting for an agent")
    agents: dict[str, int]
    today: TodayFigures
    abandon_30_days: AbandonWindow
    leads_left: dict[str, int] = Field(description="due, scheduled, callback, done")
    blocked: dict[str, int] = Field(description="today's gate blocks by reason (the agency's local day, from the stored decisions)")


class Alert(ResponseModel):
    severity: Literal["warning", "critical"]
    code: str = Field(description="abandon_rate_near_limit, abandon_rate_over_limit, dnc_list_due, dnc_list_stale, "
                                  "recordings_pending_archive, wrap_up_overrun")
    message: str
    campaign_id: str | None = None
    agent_id: str | None = None
    list_name: str | None = None


class WallboardBody(ResponseModel):
    at: UtcTime
    agents: list[WallboardAgent]
    calls: list[LiveCallBody]
    waiting: list[WaitingCaller]
    campaigns: list[WallboardCampaign]
    alerts: list[Alert]


@dataclass(frozen=True)
class AlertInputs:
    abandon: Mapping[str, tuple[int, int]]  # campaign -> (live answers, abandoned), 30 days
    lists: Sequence[ListFreshness]
    recordings_pending: int
    agents: Sequence[AgentSnapshot]
    now: float  # epoch seconds


def alerts(inputs: AlertInputs) -> list[Alert]:
    """What a supervisor must not miss, most severe first."""
    found: list[Alert] = []
    for campaign_id, (answers, abandoned) in sorted(inputs.abandon.items()):
        rate = abandoned / answers if answers else 0.0
        if rate >= LEGAL_ABANDON_LIMIT:
            found.append(Alert(severity="critical", code="abandon_rate_over_limit", campaign_id=campaign_id,
                               message=f"{campaign_id}: 30-day abandon rate {rate:.2%} is at or over the 3 % limit"))
        elif rate >= ABANDON_WARNING:
            found.append(Alert(severity="warning", code="abandon_rate_near_limit", campaign_id=campaign_id,
                               message=f"{campaign_id}: 30-day abandon rate {rate:.2%} is approaching the 3 % limit"))
    for judged in inputs.lists:
        if judged.status is FreshnessStatus.STALE or (
                judged.status is FreshnessStatus.MISSING and judged.list_name == "federal"):
            found.append(Alert(severity="critical", code="dnc_list_stale", list_name=judged.list_name,
                               message=f"The {describe_list(judged.list_name)} is {judged.status.value}: the gate "
                                       "blocks the leads it covers until a fresh copy is loaded"))
        elif judged.status is FreshnessStatus.DUE_SOON:
            found.append(Alert(severity="warning", code="dnc_list_due", list_name=judged.list_name,
                               message=f"The {describe_list(judged.list_name)} must be refreshed by {judged.deadline} "
                                       f"({judged.days_left} {'day' if judged.days_left == 1 else 'days'} left)"))
    if inputs.recordings_pending:
        found.append(Alert(severity="warning", code="recordings_pending_archive",
                           message=f"{inputs.recordings_pending} ended calls have no archived recording yet"))
    for agent in inputs.agents:
        if agent.state is not AgentState.WRAP_UP:
            continue
        over = (inputs.now - agent.wrap_up_until if agent.wrap_up_until is not None
                else inputs.now - agent.since - WRAP_UNTIMED_SECONDS + WRAP_OVERRUN_SECONDS)
        if over >= WRAP_OVERRUN_SECONDS:
            found.append(Alert(severity="warning", code="wrap_up_overrun", agent_id=agent.agent_id,
                               message=f"{agent.agent_id} has been in wrap-up {inputs.now - agent.since:.0f} s"))
    return sorted(found, key=lambda alert: alert.severity != "critical")


@dataclass(frozen=True)
class DatabaseFigures:
    """What the wallboard reads from the CRM, shared by every console for `FIGURES_SECONDS`."""

    at: float
    today: dict[str, reports.Kpis]
    abandon: dict[str, tuple[int, int]]
    left: dict[str, dict[str, int]]
    campaigns: list[dict[str, Any]]
    recordings_pending: int


# Every console re-reads the wallboard every 3 s; the database's figures (a day's and 30 days'
# calls) are computed at most this often for all of them together.
FIGURES_SECONDS = 2.0
_FIGURES: web.AppKey[dict[str, Any]] = web.AppKey("wallboard_figures", dict)


async def _database_figures(request: web.Request, now: datetime) -> DatabaseFigures:
    shared = request.app[_FIGURES]
    async with shared["lock"]:
        figures: DatabaseFigures | None = shared["figures"]
        if figures is not None and time.monotonic() - figures.at < FIGURES_SECONDS:
            return figures
        deps = request.app[DEPS]
        db = deps.store.reader
        period = reports.period_of(reports.PeriodName.TODAY, deps.agency_timezone, now)
        figures = DatabaseFigures(
            at=time.monotonic(),
            today={row.key: row for row in await reports.kpis(db, period, reports.GroupBy.CAMPAIGN, now=now)},
            abandon=await reports.abandon_30_days(db, now), left=await reports.leads_left(db, now),
            campaigns=await reports.active_campaigns(db), recordings_pending=await reports.recordings_pending(db, now))
        shared["figures"] = figures
        return figures


def add_wallboard(app: web.Application) -> None:
    """The figures shared by the app's consoles (set before the app starts)."""
    app[_FIGURES] = {"lock": asyncio.Lock(), "figures": None}


@functools.cache
def _rulebook() -> RuleBook | None:
    try:
        return load_rulebook()
    except (RuleDataError, OSError):
        return None


@routes.get("/v1/wallboard", "getWallboard",
            "Everything the supervisor's wallboard shows, at once: agents, live calls, callers waiting, campaigns "
            "(today's figures, the 30-day abandon rate, leads left, gate blocks) and alerts",
            roles=(TokenRole.SUPERVISOR, TokenRole.ADMIN), responses={200: Answer(WallboardBody, "the wallboard")})
async def wallboard(request: web.Request) -> Reply:
    deps = request.app[DEPS]
    now = deps.clock()
    epoch = now.timestamp()
    runtime = request.app.get(CAMPAIGNS)
    monitors = request.app.get(MONITORS)
    snapshots = [] if runtime is None else [
        found for found in (runtime.agent_state(agent_id) for agent_id in sorted(runtime.agents)) if found is not None]
    agents = [WallboardAgent(agent_id=s.agent_id, state=s.state, since=datetime.fromtimestamp(s.since, now.tzinfo),
                             seconds_in_state=round(max(0.0, epoch - s.since), 1), call_id=s.call_id,
                             campaign_ids=list(s.campaign_ids), pause_reason=s.pause_reason,
                             wrap_up_until=None if s.wrap_up_until is None else
                             datetime.fromtimestamp(s.wrap_up_until, now.tzinfo)) for s in snapshots]
    live = [] if monitors is None else monitors.live_calls()
    calls = [LiveCallBody.of(call, monitors.monitors_of(call.call_id)) for call in live] if monitors else []
    waiting = [WaitingCaller(call_id=call.call_id, campaign_id=call.campaign_id, direction=call.direction,
                             lead_number=call.lead_number,
                             waiting_seconds=round(max(0.0, (now - call.started_at).total_seconds()), 1))
               for call in live if not call.connected and call.state in WAITING_STATES]
    figures = await _database_figures(request, now)
    today, abandon, left = figures.today, figures.abandon, figures.left
    campaigns = []
    for row in figures.campaigns:
        campaign_id = row["campaign_id"]
        status = None if runtime is None else runtime.campaign_status(campaign_id)
        day = today.get(campaign_id, reports.Kpis(campaign_id))
        answers, abandoned = abandon.get(campaign_id, (0, 0))
        campaigns.append(WallboardCampaign(
            campaign_id=campaign_id, name=row["name"], running=bool(status and status.running),
            paused=bool(status and status.paused), dial_mode=status.dial_mode if status else row["dial_mode"],
            pacer=status.pacer if status and status.running else None, abandon_setpoint=row["abandon_setpoint"],
            lines=status.lines if status else 0, hopper=status.hopper if status else 0,
            waiting=status.waiting if status else 0, agents=dict(status.agents) if status else {},
            today=TodayFigures(dials=day.dials, answered=day.answered, people=day.people, connected=day.connected,
                               abandoned=day.abandoned),
            abandon_30_days=AbandonWindow(rate=abandoned / answers if answers else 0.0, live_answers=answers,
                                          abandoned=abandoned),
            leads_left=left.get(campaign_id, {"due": 0, "scheduled": 0, "callback": 0, "done": 0}),
            blocked=dict(status.blocked) if status else {}))
    book = _rulebook()
    lists = list_freshness(book, await deps.dnc.versions(), now) if book is not None else ()
    found = alerts(AlertInputs(abandon={c.campaign_id: (c.abandon_30_days.live_answers, c.abandon_30_days.abandoned)
                                        for c in campaigns},
                               lists=lists, recordings_pending=figures.recordings_pending,
                               agents=snapshots, now=epoch))
    return Reply(WallboardBody(at=now, agents=agents, calls=calls, waiting=waiting, campaigns=campaigns,
                               alerts=found))
