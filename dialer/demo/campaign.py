"""The demo campaign's core: seed a campaign, leads, DNC lists and agents into a running dialer
(`dialer_services`), run the predictive campaign for a while with progress samples, stop it,
log the agents out, and summarise the run from the CRM rows.

It uses only the campaign runtime's public operations (`login`, `start_campaign`,
`campaign_status`, `stop_campaign`, `logout`) and the outbox, exactly as `dialer serve` and the
integration tests do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from compliance_rules.model import TextKind
from compliance_rules.numbers import parse_number
from compliance_rules.ruleset import RuleBook
from compliance_rules.telemarketing import is_live_answer
from crm_bridge.kinds import RecordKind
from dialer.campaign.agent import AgentState
from dialer.campaign.dialing import CampaignRunner, campaign_lead_record
from dialer.demo.leads import DemoLead, with_texters
from dialer.runtime.errors import ComplianceBlocked
from dialer.serve import DialerServices
from dialer.texting.inbound import InboundPlan
from dialer.texting.runtime import SendRequest
from dialer.texting.transport import InboundText

# Durations compressed for a demo of a few minutes (the defaults are for a real floor).
DEMO_TUNING: Mapping[str, object] = {
    "wrap_up_seconds": 2.0,
    "ring_timeout": 15,  # 47 CFR 64.1200(a)(6): at least 15 s
    "tick_seconds": 0.3,
    "max_lines": 12,
    "tally_refresh_seconds": 2.0,
    "blocked_retry_seconds": 900.0,
}
ABANDON_LIMIT = 0.03  # 47 CFR 64.1200(a)(7): 3 % of live answers per campaign per 30 days
BUSY_STATES = (AgentState.RESERVED, AgentState.ON_CALL)


class DemoError(Exception):
    """The demo could not run; one sentence saying why."""


@dataclass(frozen=True)
class DemoAgent:
    """An agent to log in: a softphone endpoint (`agent1001`) or `Local/ID@agent-sim`."""

    agent_id: str
    endpoint: str
    name: str


@dataclass(frozen=True)
class Progress:
    """One sample of the running campaign, for the live display."""

    elapsed: float
    seconds: float
    dials: int
    people: int  # answered by a person (AMD: not a machine)
    machines: int
    connected: int
    abandoned: int
    lines: int
    agents_busy: int
    agents_logged_in: int
    occupancy: float  # average share of logged-in agents reserved or on a call so far
    blocked: Mapping[str, int]


@dataclass
class DemoSummary:
    """What the run did, recounted from the CRM rows (the evidence), not only from counters."""

    campaign_id: str
    gate_clock: str
    seconds: float
    leads: int
    leads_by_state: dict[str, int]
    dnc_leads: int
    agents: list[str]
    dials: int
    outcomes: dict[str, int]
    live_answers: int
    connected: int
    safe_harbor: int
    abandoned: int
    abandon_rate: float  # as the runtime reports it (30-day tally from the calls rows)
    abandon_recount: float  # recounted here from the calls rows
    abandon_limit: float
    gate_blocks: dict[str, int]
    leads_blocked: int  # leads the gate blocked and that were never dialed
    leads_blocked_by_reason: dict[str, int]
    leads_not_reached: int  # neither dialed nor blocked: the run ended first
    dnc_leads_dialed: int
    people_unattended: int  # answered by a person, neither connected nor given the safe-harbor message
    calls_without_allowed_decision: int
    connected_recorded: int
    recordings: int
    # Connected calls whose decision asked for the recording notice (all-party-consent states).
    connected_announced: int
    opted_out_by_key: int
    texts_sent: int  # marketing texts to demo leads before the campaign
    texts_blocked: int
    texts_delivered: int
    text_replies: dict[str, int]  # by what they asked for: opt_out, help, reply
    opted_out_by_text: int
    # Leads who texted STOP and were dialed after it (must be 0: the opt-out blocks every channel).
    dialed_after_text_opt_out: int
    occupancy: float
    recordings_dir: str
    recording_example: str | None  # the archived file of one connected call
    database: str
    calls_sample: list[dict[str, object]] = field(default_factory=list)
    # How long it dialed (`--minutes`); `seconds` adds the time its last calls took to end.
    dialing_seconds: float = 0.0
    texts_blocked_by_reason: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


async def _seed(services: DialerServices, items: Sequence[tuple[str, Mapping[str, object]]]) -> None:
    for start in range(0, len(items), 500):
        await services.outbox.put_many(items[start:start + 500])
    if not await services.outbox.flush(60):
        raise DemoError("the CRM outbox could not deliver the demo's rows to PostgreSQL within 60 s")


async def mark_lists_fresh(services: DialerServices, book: RuleBook, today: date) -> None:
    """Date the National DNC Registry copy and every state list the rules know as downloaded
    `today`: the gate blocks every lead with `registry_stale` otherwise (47 CFR
    64.1200(c)(2)(i)(D): a copy at most 31 days old). The demo's lists hold only its own numbers."""
    await services.dnc.set_list_date("federal", today)
    for state in book.state_dnc_lists:
        await services.dnc.set_list_date(f"state:{state}", today)


async def seed_campaign(services: DialerServices, run_id: str) -> str:
    campaign_id = f"demo-{run_id}"
    await _seed(services, [(RecordKind.CAMPAIGN_UPSERT, {
        "campaign_id": campaign_id, "name": "Demo: final expense outreach", "caller_id": "+18885550123",
        "dial_mode": "predictive", "seller_name": "Acme Insurance Agency", "dnc_callback_number": "+18885550199",
        "amd_settings": {"machine_action": "hangup"},
    })])
    return campaign_id


async def seed_leads(services: DialerServices, campaign_id: str, run_id: str, leads: Sequence[DemoLead]) -> dict[str, str]:
    """The leads in the CRM and the campaign, the DNC ones on their list in Redis; phone -> lead id."""
    ids = {lead.phone: f"demo-{run_id}-{lead.index:04d}" for lead in leads}
    items: list[tuple[str, Mapping[str, object]]] = []
    for lead in leads:
        items.append((RecordKind.LEAD_UPSERT, lead.lead_fields(ids[lead.phone])))
        items.append((RecordKind.CAMPAIGN_LEAD, campaign_lead_record(campaign_id, ids[lead.phone])))
    await _seed(services, items)
    for lead in leads:
        if lead.dnc is not None:
            await services.dnc.set_membership(lead.dnc.value, parse_number(lead.phone), True)
    return ids


async def opted_out_numbers(services: DialerServices) -> set[str]:
    """Every number opted out in the demo's database (earlier runs' STOP texts and 9 presses)."""
    numbers: set[str] = set()
    after = ""
    while page := await services.store.opted_out_phones(after=after):
        numbers.update(page)
        after = page[-1]
    return numbers


DEMO_TEXT = "Hi {first_name}, {agency_name} here about the final expense quote you asked for."


@dataclass
class TextingOutcome:
    sent: int = 0
    blocked: int = 0
    blocked_by_reason: Counter[str] = field(default_factory=Counter)
    replies: Counter[str] = field(default_factory=Counter)


async def text_leads(services: DialerServices, campaign_id: str, leads: Sequence[DemoLead],
                     lead_ids: Mapping[str, str], within: float = 10.0) -> TextingOutcome:
    """Text the texters (a marketing text each, through the gate) and wait for their answers;
    the one who answers STOP is opted out of every channel before the campaign starts."""
    texting = services.texting
    assert texting is not None
    outcome = TextingOutcome()
    texters = [lead for lead in leads if lead.texts is not None]
    answered: set[str] = set()
    expected = len(texters)
    all_answered = asyncio.Event()

    def heard(text: InboundText, plan: InboundPlan, lead_id: str | None) -> None:
        del lead_id
        if text.from_number not in answered:
            answered.add(text.from_number)
            outcome.replies[plan.keyword.value if plan.keyword else "reply"] += 1
        if len(answered) >= expected:
            all_answered.set()

    texting.inbound_listeners.append(heard)
    try:
        for lead in texters:
            try:
                await texting.send_text(SendRequest(lead_id=lead_ids[lead.phone], campaign_id=campaign_id,
                                                    body=DEMO_TEXT, kind=TextKind.MARKETING, requested_by="demo"))
                outcome.sent += 1
            except ComplianceBlocked as blocked:
                outcome.blocked += 1
                outcome.blocked_by_reason.update(reason.code for reason in blocked.reasons)
        expected = outcome.sent
        if len(answered) >= expected:
            all_answered.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await all_answered.wait()
    finally:
        texting.inbound_listeners.remove(heard)
    return outcome


async def log_in(services: DialerServices, campaign_id: str, agents: Sequence[DemoAgent], within: float = 20.0) -> None:
    runtime = services.campaigns
    assert runtime is not None
    await _seed(services, [(RecordKind.AGENT_UPSERT, {"agent_id": a.agent_id, "name": a.name, "sip_endpoint": a.endpoint})
                           for a in agents])
    for agent in agents:
        await runtime.login(agent.agent_id, [campaign_id])
    deadline = time.monotonic() + within
    while True:
        waiting = [a for a in agents if (s := runtime.agent_state(a.agent_id)) is None or s.state is not AgentState.READY]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise DemoError(f"agent {waiting[0].agent_id} ({waiting[0].endpoint}) did not answer its login call "
                            f"within {within:.0f} s")
        await asyncio.sleep(0.1)


async def log_out(services: DialerServices, agents: Sequence[DemoAgent], within: float = 20.0) -> None:
    runtime = services.campaigns
    assert runtime is not None
    for agent in agents:
        if runtime.agent_state(agent.agent_id) is not None:
            await runtime.logout(agent.agent_id)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(a.agent_id in runtime.agents for a in agents):
            return
        await asyncio.sleep(0.1)  # the runtime's own state, no event to wait on


def _sample(runner: CampaignRunner, agents: Sequence[DemoAgent], started: float, seconds: float,
            occupancy: float) -> Progress:
    status = runner.status()
    busy = sum(status.agents.get(state.value, 0) for state in BUSY_STATES)
    logged_in = sum(count for state, count in status.agents.items() if state != AgentState.LOGGED_OUT.value)
    del agents
    # The runtime counts calls when they end; calls still live count here already.
    live = [call.record for call in runner.calls.values()]
    return Progress(
        elapsed=time.monotonic() - started, seconds=seconds, dials=status.counters.get("dials", 0),
        people=status.counters.get("live_answers", 0) + sum(1 for r in live if r.live_answer),
        machines=status.counters.get("machine", 0) + sum(1 for r in live if r.amd_result == "MACHINE"),
        connected=status.counters.get("connected", 0) + sum(1 for r in live if r.bridged_at is not None),
        abandoned=status.counters.get("abandoned_calls", 0) + sum(1 for r in live if r.safe_harbor_played),
        lines=status.lines, agents_busy=busy, agents_logged_in=logged_in, occupancy=occupancy,
        blocked=dict(status.blocked),
    )


async def run_campaign(
    services: DialerServices,
    campaign_id: str,
    agents: Sequence[DemoAgent],
    seconds: float,
    on_progress: Callable[[Progress], None] | None = None,
    *,
    finish_within: float = 60.0,
) -> tuple[CampaignRunner, float]:
    """Run the campaign for `seconds`, then stop dialing and let the calls with a person on them
    finish (within `finish_within`). Returns the runner and the agents' average occupancy."""
    runtime = services.campaigns
    assert runtime is not None
    started = time.monotonic()
    await runtime.start_campaign(campaign_id)
    runner = runtime.campaigns[campaign_id]
    busy_sum = logged_sum = 0
    while (elapsed := time.monotonic() - started) < seconds:
        status = runner.status()
        busy_sum += sum(status.agents.get(state.value, 0) for state in BUSY_STATES)
        logged_sum += sum(count for state, count in status.agents.items() if state != AgentState.LOGGED_OUT.value)
        if on_progress is not None:
            on_progress(_sample(runner, agents, started, seconds, busy_sum / max(1, logged_sum)))
        if logged_sum and not runtime.agents:
            raise DemoError("every agent's leg hung up during the run, so the campaign has nobody to connect")
        await asyncio.sleep(min(1.0, max(0.0, seconds - elapsed)))
    # Stop dialing but let every live call reach its own end (a person answered during AMD is
    # connected or hears the safe-harbor message, not cut off); then stop what is left.
    runner.running = False
    runner.hopper.clear()
    deadline = time.monotonic() + finish_within
    while runner.calls and time.monotonic() < deadline:
        if on_progress is not None:
            on_progress(_sample(runner, agents, started, seconds, busy_sum / max(1, logged_sum)))
        await asyncio.sleep(0.5)
    await runtime.stop_campaign(campaign_id)
    return runner, busy_sum / max(1, logged_sum)


async def summarise(
    services: DialerServices,
    runner: CampaignRunner,
    leads: Sequence[DemoLead],
    lead_ids: Mapping[str, str],
    agents: Sequence[DemoAgent],
    *,
    gate_clock: str,
    seconds: float,
    occupancy: float,
    texting: TextingOutcome | None = None,
    dialing_seconds: float = 0.0,
) -> DemoSummary:
    """The run's summary, recounted from the CRM's `calls`, `compliance_decisions`,
    `recordings`, `opt_outs` and `campaign_leads` rows."""
    await services.outbox.flush(30)
    await runner.refresh_tally()
    campaign_id = runner.campaign_id
    connection = await asyncpg.connect(services.settings.pg_dsn)
    try:
        calls = await connection.fetch(
            "SELECT c.*, d.allowed AS decision_allowed, jsonb_array_length(d.notices) > 0 AS announced, "
            "r.recording_id AS recorded, r.storage_uri FROM calls c "
            "LEFT JOIN compliance_decisions d ON d.decision_id = c.compliance_decision_id "
            "LEFT JOIN recordings r ON r.call_id = c.call_id "
            "WHERE c.campaign_id = $1 ORDER BY c.requested_at", campaign_id)
        opted_out = await connection.fetchval(
            "SELECT count(*) FROM opt_outs WHERE source = 'safe_harbor_key' AND lead_id = ANY($1::text[])",
            list(lead_ids.values()))
        # Leads never dialed, by each reason the gate gave for dialing them (a lead may have
        # several; the texts' decisions are the texts row's).
        never = await connection.fetch(
            "SELECT reason->>'code' AS code, count(DISTINCT d.lead_id) AS n FROM compliance_decisions d, "
            "jsonb_array_elements(d.reasons) AS reason WHERE d.campaign_id = $1 AND d.channel = 'voice' AND NOT d.allowed "
            "AND d.lead_id <> ALL(SELECT lead_id FROM calls WHERE campaign_id = $1 AND lead_id IS NOT NULL) GROUP BY 1 ORDER BY 2 DESC",
            campaign_id)
        # Text-side evidence: the texts, who opted out by text, and any dial after that opt-out.
        delivered = await connection.fetchval(
            "SELECT count(*) FROM messages WHERE campaign_id = $1 AND direction = 'outbound' AND kind = 'marketing' "
            "AND delivery_status = 'delivered'", campaign_id)
        by_text = await connection.fetch(
            "SELECT phone, min(created_at) AS at FROM opt_outs WHERE source = 'sms_keyword' "
            "AND lead_id = ANY($1::text[]) GROUP BY phone", list(lead_ids.values()))
        dialed_after = await connection.fetchval(
            "SELECT count(*) FROM calls c JOIN opt_outs o ON o.phone = c.lead_number AND o.source = 'sms_keyword' "
            "WHERE c.campaign_id = $1 AND c.requested_at >= o.created_at", campaign_id)
        never_total = await connection.fetchval(
            "SELECT count(DISTINCT lead_id) FROM compliance_decisions WHERE campaign_id = $1 AND channel = 'voice' "
            "AND NOT allowed "
            "AND lead_id <> ALL(SELECT lead_id FROM calls WHERE campaign_id = $1 AND lead_id IS NOT NULL)", campaign_id)
    finally:
        await connection.close()
    dnc_phones = {lead.phone for lead in leads if lead.dnc is not None}
    live = [c for c in calls if is_live_answer(c["amd_result"], inbound=c["direction"] == "inbound")]
    abandoned = sum(1 for c in live if c["abandoned"])
    connected = [c for c in calls if c["bridged_at"] is not None]
    status = runner.status()
    database = services.settings.pg_dsn.rsplit("/", 1)[-1]
    return DemoSummary(
        campaign_id=campaign_id,
        gate_clock=gate_clock,
        seconds=round(seconds, 1),
        leads=len(leads),
        leads_by_state=dict(Counter(lead.home.state for lead in leads)),
        dnc_leads=len(dnc_phones),
        agents=[a.agent_id for a in agents],
        dials=len(calls),
        outcomes=dict(Counter(str(c["outcome"]) for c in calls)),
        live_answers=len(live),
        connected=len(connected),
        safe_harbor=sum(1 for c in calls if c["safe_harbor_played"]),
        abandoned=abandoned,
        abandon_rate=status.abandon_rate,
        abandon_recount=abandoned / len(live) if live else 0.0,
        abandon_limit=ABANDON_LIMIT,
        gate_blocks=dict(status.blocked),
        leads_blocked=int(never_total or 0),
        leads_blocked_by_reason={str(row["code"]): int(row["n"]) for row in never},
        leads_not_reached=len(leads) - len({c["lead_id"] for c in calls}) - int(never_total or 0),
        people_unattended=sum(1 for c in live if c["bridged_at"] is None and not c["safe_harbor_played"]),
        dnc_leads_dialed=sum(1 for c in calls if c["lead_number"] in dnc_phones),
        calls_without_allowed_decision=sum(1 for c in calls if not c["decision_allowed"]),
        connected_recorded=sum(1 for c in connected if c["recorded"] is not None),
        recordings=sum(1 for c in calls if c["recorded"] is not None),
        connected_announced=sum(1 for c in connected if c["announced"]),
        opted_out_by_key=int(opted_out or 0),
        texts_sent=texting.sent if texting else 0,
        texts_blocked=texting.blocked if texting else 0,
        texts_delivered=int(delivered or 0),
        text_replies=dict(texting.replies) if texting else {},
        opted_out_by_text=len(by_text),
        dialed_after_text_opt_out=int(dialed_after or 0),
        occupancy=round(occupancy, 3),
        recordings_dir=str(services.settings.recordings_dir),
        recording_example=next((urllib.parse.urlsplit(str(c["storage_uri"])).path for c in connected
                                if c["storage_uri"] is not None), None),
        database=database,
        calls_sample=[_call_json(c) for c in calls[:3]],
        dialing_seconds=round(dialing_seconds, 1),
        texts_blocked_by_reason=dict(texting.blocked_by_reason) if texting else {},
    )


def _call_json(row: Any) -> dict[str, object]:
    return {key: (value.isoformat() if isinstance(value, datetime) else value)
            for key, value in dict(row).items()
            if key in ("call_id", "lead_number", "outcome", "amd_result", "agent_id", "abandoned")}


@dataclass(frozen=True)
class DemoRun:
    """What `run_demo` needs besides the running dialer."""

    leads: Sequence[DemoLead]
    agents: Sequence[DemoAgent]
    seconds: float
    book: RuleBook
    gate_now: Callable[[], datetime]
    gate_clock: str  # how the gate's clock runs, for the summary
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])


async def run_demo(services: DialerServices, run: DemoRun,
                   on_progress: Callable[[Progress], None] | None = None,
                   say: Callable[[str], None] | None = None) -> DemoSummary:
    """Seed, log in, run, stop, log out, summarise. Agents are logged out whatever happens."""
    def note(message: str) -> None:
        if say is not None:
            say(message)

    await mark_lists_fresh(services, run.book, run.gate_now().date())
    leads = with_texters(run.leads, run.gate_now(), run.book, opted_out=await opted_out_numbers(services))
    campaign_id = await seed_campaign(services, run.run_id)
    lead_ids = await seed_leads(services, campaign_id, run.run_id, leads)
    note(f"Campaign {campaign_id}: {len(leads)} leads in {len({lead.home.state for lead in leads})} states "
         f"({sum(1 for lead in leads if lead.dnc)} on DNC lists); texting {sum(1 for lead in leads if lead.texts)} "
         "of them first...")
    texting = await text_leads(services, campaign_id, leads, lead_ids)
    why = f" ({', '.join(f'{k} {v}' for k, v in texting.blocked_by_reason.items())})" if texting.blocked else ""
    note(f"Texts: {texting.sent} sent, {texting.blocked} blocked{why}; answers: "
         f"{', '.join(f'{k} {v}' for k, v in texting.replies.items()) or 'none'}; logging in {len(run.agents)} agents...")
    try:
        await log_in(services, campaign_id, run.agents)
        note(f"Agents ready; running the predictive campaign for {run.seconds / 60:.1f} min "
             f"(gate clock: {run.gate_clock}).")
        started = time.monotonic()
        runner, occupancy = await run_campaign(services, campaign_id, run.agents, run.seconds, on_progress)
        seconds = time.monotonic() - started
    finally:
        await log_out(services, run.agents)
    return await summarise(services, runner, leads, lead_ids, run.agents, gate_clock=run.gate_clock,
                           seconds=seconds, occupancy=occupancy, texting=texting, dialing_seconds=run.seconds)


def shifted_clock(start: datetime) -> Callable[[], datetime]:
    """A clock that starts at `start` now and runs at the real pace."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def real_clock() -> datetime:
    return datetime.now(UTC)
