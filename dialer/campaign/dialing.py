"""One running campaign's dialing loop (`CampaignRunner`): hopper, gate and pacer.

Every tick (or sooner: a web lead, a newly ready agent, a call's end wakes it) the runner builds
a `PacingSnapshot` from the live agent states and the campaign's calls, asks the pacer how many
lines to open, takes that many leads from the hopper (pre-checked by the gate in batches), asks
the gate once more with a cap reservation right before each dial (`decide_at_dial`), and hands
the lead to its host to originate. When a call ends, it counts the outcome and decides the
lead's next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog
from redis.exceptions import RedisError

from compliance_rules.model import ReasonCode
from compliance_rules.policy import CampaignPolicy
from compliance_rules.telemarketing import MIN_RING_SECONDS
from crm_bridge import reports
from crm_bridge.kinds import RecordKind
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import Campaign, CampaignLead, Lead
from dialer.campaign.agent import AgentState
from dialer.campaign.agents import AgentFloor
from dialer.campaign.amd import AmdSettingsError, amd_arguments
from dialer.campaign.caller_id import CallerIdCheck, check_caller_id
from dialer.campaign.hopper import Hopper, HopperEntry, RetryDecision, after_attempt
from dialer.campaign.machine import CampaignCallRequest
from dialer.campaign.record import CampaignCallRecord, CampaignCallState, MachineAction
from dialer.pacing import (
    ABANDON_WINDOW_DAYS,
    AbandonTally,
    EventKind,
    Pacer,
    PacingEvent,
    PacingSnapshot,
    PowerPacer,
    PredictiveConfig,
    PredictivePacer,
    PreviewPacer,
    ProgressivePacer,
)
from dialer.provision.trunks import CallerIdRecord, TrunkRouter
from dialer.runtime.admission import Slot
from dialer.runtime.causes import utc
from dialer.runtime.gate import contact_request, decide_at_dial, policy_for_campaign
from dialer.runtime.ids import Prefix, new_id
from dialer.runtime.outage import Outage
from dialer.runtime.services import CallServices

log = structlog.get_logger(__name__)

# A lead the gate could not decide on (not a verdict) is tried again after about this long
# (jittered by half either way): soon after Redis answers again, and at most one decision per
# hopper lead every few seconds while it does not (the hopper holds `hopper_size` leads).
GATE_RETRY_SECONDS = 3.0
# What an unreachable PostgreSQL or Redis raises: an outage, not a bug.
_OUTAGES = (DatabaseUnavailable, ConnectionError, OSError, TimeoutError, RedisError)


# Gate reasons that will not change by waiting: the lead's run in the campaign ends.
PERMANENT_BLOCKS = frozenset(
    {ReasonCode.INVALID_NUMBER, ReasonCode.DNC_FEDERAL, ReasonCode.DNC_STATE, ReasonCode.DNC_INTERNAL,
     ReasonCode.LITIGATOR, ReasonCode.OPTED_OUT, ReasonCode.CONSENT_MISSING, ReasonCode.UNKNOWN_LOCATION}
)


@dataclass(frozen=True)
class CampaignSettings:
    """How the runtime runs campaigns (durations compress for tests and the demo)."""

    recordings_dir: Path
    trunk_endpoint: str = "trunk"
    default_caller_id: str = "+18885550100"
    wrap_up_seconds: float = 30.0
    ring_timeout: int = 20
    agent_wait: float = 1.5
    agent_ring_timeout: int = 30
    tick_seconds: float = 0.5
    max_lines: int = 30
    hopper_size: int = 40
    blocked_retry_seconds: float = 900.0
    tally_refresh_seconds: float = 15.0
    redis_key: str = "dialer:agents"
    # At shutdown: log agents out (hang up their legs), or leave the legs up for the next
    # controller to take back (a rolling restart).
    logout_on_shutdown: bool = True
    # With a controller lease (docs/cluster.md): the Redis hash of running campaigns, which the
    # controller taking over starts again (None: campaigns start only when asked, as with one controller).
    running_key: str | None = None
    # The carriers' trunks: preference order, calls per second, reachability (None: trunk_endpoint).
    trunk_router: TrunkRouter | None = None
    # The agency's vouched caller IDs; a campaign's must be one of them when required
    # (`dialer.campaign.caller_id`; `Settings.caller_ids_required`).
    caller_ids: tuple[CallerIdRecord, ...] = ()
    caller_ids_required: bool = False
    # The zone whose local day the campaign's "today" figures (its gate blocks) cover.
    agency_timezone: str = "America/New_York"

    def caller_id_check(self, campaign: Campaign) -> CallerIdCheck:
        """Whether the campaign may dial with its caller ID (or the default it falls back to)."""
        return check_caller_id(campaign.caller_id or self.default_caller_id, self.caller_ids,
                               require_vouched=self.caller_ids_required, today=datetime.now(UTC).date())

    def __post_init__(self) -> None:
        if self.ring_timeout < MIN_RING_SECONDS:
            raise ValueError(f"ring_timeout must be >= {MIN_RING_SECONDS} s (47 CFR 64.1200(a)(6))")

    def route(self, call_id: str, now: float) -> str | None:
        """The trunk of a new call (a channel and a calls-per-second token taken, given back when
        the call ends: `TrunkRouter.release` with the call id), or None when every trunk is full
        or out of budget: the call waits, no trunk goes past its limits."""
        return self.trunk_router.route(now, key=call_id) if self.trunk_router else self.trunk_endpoint

    @property
    def trunk_count(self) -> int:
        return len(self.trunk_router.trunks) if self.trunk_router else 1

    @property
    def trunk_endpoints(self) -> tuple[str, ...]:
        """Every endpoint leads may be dialed through (their channels are followed before Stasis)."""
        routed = tuple(trunk.endpoint for trunk in self.trunk_router.trunks) if self.trunk_router else ()
        return routed or (self.trunk_endpoint,)


def campaign_lead_record(campaign_id: str, lead_id: str, **fields: object) -> dict[str, object]:
    """A `campaign_lead` outbox record (membership of a lead in a campaign, or its history)."""
    return {"membership_id": f"{campaign_id}:{lead_id}", "campaign_id": campaign_id, "lead_id": lead_id, **fields}


def pacer_for(campaign: Campaign) -> Pacer:
    """The pacing engine's pacer for the campaign's dial mode."""
    mode = campaign.dial_mode.value
    if mode == "predictive":
        if campaign.abandon_setpoint is not None:
            return PredictivePacer(PredictiveConfig(max_setpoint=campaign.abandon_setpoint))
        return PredictivePacer()
    if mode == "power":
        return PowerPacer(float(campaign.amd_settings.get("lines_per_agent", 2.0)))
    if mode == "preview":
        return PreviewPacer(float(campaign.amd_settings.get("preview_seconds", 5.0)))
    return ProgressivePacer()


@dataclass
class CampaignStatus:
    campaign_id: str
    running: bool
    dial_mode: str
    pacer: str
    hopper: int
    lines: int
    waiting: int
    agents: dict[str, int]
    counters: dict[str, int]
    blocked: dict[str, int]
    abandon_rate: float
    live_answers: int
    abandoned: int
    paused: bool = False

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


class CampaignCall(Protocol):
    """A live call of the campaign, as its dialing loop counts it."""

    @property
    def call_id(self) -> str: ...

    @property
    def state(self) -> CampaignCallState: ...

    @property
    def requested_at(self) -> float: ...

    @property
    def record(self) -> CampaignCallRecord: ...

    def stop(self) -> None: ...


class DialingHost(Protocol):
    """What a campaign's dialing loop asks of the runtime."""

    def live_lines(self) -> int: ...

    async def originate(
        self, campaign: CampaignRunner, entry: HopperEntry[Lead], request: CampaignCallRequest, slot: Slot
    ) -> None: ...

    def call_ended(self, record: CampaignCallRecord) -> None:
        """An outbound call's final figures (metrics)."""

    def web_lead_dialed(self, waited_seconds: float) -> None:
        """A web lead's first dial, `waited_seconds` after it arrived (speed-to-lead)."""


class CampaignRunner:
    """One running campaign: hopper, pacer, and its live calls."""

    def __init__(self, host: DialingHost, services: CallServices, floor: AgentFloor, settings: CampaignSettings,
                 campaign: Campaign, pacer: Pacer) -> None:
        self.host = host
        self.services = services
        self.floor = floor
        self.settings = settings
        self.campaign = campaign
        self.campaign_id = campaign.campaign_id
        self.pacer = pacer
        self.hopper: Hopper[Lead] = Hopper(settings.hopper_size)
        self.calls: dict[str, CampaignCall] = {}
        self.counters: Counter[str] = Counter()
        # Today's gate blocks by reason (the agency's local day): loaded from the stored decisions
        # at start (`load_blocks`), counted here after; `_blocks_until` is the end of that day.
        self.blocked: Counter[str] = Counter()
        self._blocks_until = 0.0
        self.tally = AbandonTally()
        self.running = True
        self.stopped = asyncio.Event()
        self._tally_at = 0.0
        # Web leads waiting for their first dial, with the time they arrived (speed-to-lead).
        self.web_leads_arrived: dict[str, float] = {}
        self._refill_at = 0.0
        self.wake = asyncio.Event()
        self.log = log.bind(campaign_id=self.campaign_id)
        self._outage = Outage("campaign_store_unreachable")
        self.paused = False

    @property
    def policy(self) -> CampaignPolicy:
        return policy_for_campaign(self.campaign)

    # -- the pacing loop ---------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while self.running:
                try:
                    await self._tick()
                    self._outage.recovered(self.log)
                except _OUTAGES as error:
                    # PostgreSQL or Redis out of reach: said once per outage, not every tick.
                    self._outage.failed(self.log, error)
                except Exception:
                    self.log.exception("campaign_tick_failed")
                # The pacing tick; a speed-to-lead lead, a newly ready agent or a call's end wakes it early.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.tick_seconds):
                        await self.wake.wait()
                self.wake.clear()
        finally:
            self.stopped.set()

    def change_settings(self, campaign: Campaign, pacer: Pacer | None) -> None:
        """New settings from the campaign's control (`dialer.campaign.control`): the next dial uses
        them; a new pacer (the dial mode or the setpoint changed) starts from its own priors."""
        self.campaign = campaign
        if pacer is not None:
            self.pacer = pacer
        self.wake.set()

    def stop(self) -> None:
        """Stop dialing: queued leads are dropped, calls not yet answered are ended; answered
        calls (in AMD or with a person) finish normally."""
        self.running = False
        self.hopper.clear()
        for call in list(self.calls.values()):
            call.stop()
        self.wake.set()

    def snapshot(self, now: float) -> PacingSnapshot:
        ready, talking, wrapping, paused = [], [], [], 0
        for agent in self.floor.of(self.campaign_id):
            session = agent.session
            match session.state:
                case AgentState.READY:
                    ready.append(session.since)
                case AgentState.RESERVED | AgentState.ON_CALL:
                    talking.append(session.since)
                case AgentState.WRAP_UP:
                    wrapping.append(session.since)
                case AgentState.PAUSED:
                    paused += 1
        ringing = [c.requested_at for c in self.calls.values()
                   if c.state in (CampaignCallState.DIALING, CampaignCallState.ANSWERED)]
        waiting = sum(1 for c in self.calls.values() if c.state is CampaignCallState.WAITING_AGENT)
        # The campaign's own ceiling, and what the node can set up now (admission control).
        free = max(0, min(self.settings.max_lines - self.host.live_lines(), self.services.admission.free_lines()))
        return PacingSnapshot(tuple(ready), tuple(talking), tuple(wrapping), paused, tuple(ringing), waiting, free,
                              self.tally)

    async def _tick(self) -> None:
        now = time.time()
        if now - self._tally_at >= self.settings.tally_refresh_seconds:
            try:
                await self.refresh_tally()
            except _OUTAGES as error:
                # The pacer goes on with the tally it has (read a moment ago); the leads already
                # in the hopper are dialed, each still checked by the gate.
                self._outage.failed(self.log, error)
                self._tally_at = now
        if len(self.hopper) < self.hopper.target_size // 2 and now >= self._refill_at:
            self._refill_at = now + 3.0
            added = await self.refill(now)
            self._refill_at = now + (1.0 if added else 3.0)
        if self.paused:
            return  # a supervisor paused it: no new dials; the calls up finish
        snapshot = self.snapshot(now)
        if snapshot.logged_in_agents == 0:
            return
        lines = min(self.pacer.decide(snapshot, now), snapshot.free_lines)
        if self.settings.trunk_router is not None:  # the trunks' calls-per-second limits
            lines = self.settings.trunk_router.limit(lines, now)
        for _ in range(lines):
            if not self.running:
                break
            entry = self.hopper.take(self.floor.ready_agents(self.campaign_id))
            if entry is None:
                break
            await self.dial(entry)

    async def refresh_tally(self) -> None:
        since = datetime.now(UTC) - timedelta(days=ABANDON_WINDOW_DAYS)
        self.tally = await self.services.store.abandon_tally(self.campaign_id, since)
        self._tally_at = time.time()

    def _today(self) -> reports.Period:
        """The agency's local day by the gate's clock (the clock its decisions are stamped with)."""
        return reports.period_of(reports.PeriodName.TODAY, self.settings.agency_timezone, self.services.gate.clock())

    async def load_blocks(self) -> None:
        """Today's gate blocks from the audited decisions (`compliance_decisions`), so the figures
        survive a restart of the controller."""
        today = self._today()
        self.blocked = Counter(await self.services.store.gate_blocks(self.campaign_id, today.start, today.end))
        self._blocks_until = today.end.timestamp()

    def _count_blocks(self, codes: Sequence[ReasonCode]) -> None:
        if self.services.gate.clock().timestamp() >= self._blocks_until:
            # A new local day: its figures start from zero (no decision of it was counted yet).
            self.blocked = Counter()
            self._blocks_until = self._today().end.timestamp()
        for code in codes:
            self.blocked[code.value] += 1

    def _blocks_today(self) -> dict[str, int]:
        return dict(self.blocked) if self.services.gate.clock().timestamp() < self._blocks_until else {}

    async def refill(self, now: float) -> int:
        """Load due leads from the CRM and pre-check them with the gate in one batch."""
        candidates = await self.services.store.due_campaign_leads(
            self.campaign_id, utc(now), limit=self.hopper.wanted(), exclude=sorted(self.hopper.excluded(now))
        )
        if not candidates:
            return 0
        decisions = await self.services.gate.decide_many(
            [contact_request(c.lead.phones[0], c.lead) for c in candidates], self.policy
        )
        allowed: list[HopperEntry[Lead]] = []
        for candidate, decision in zip(candidates, decisions, strict=True):
            entry = self._entry(candidate)
            if decision.allowed:
                allowed.append(entry)
            else:
                await self._blocked(entry, decision.codes, now)
        return self.hopper.add(allowed, now)

    @staticmethod
    def _entry(candidate: CampaignLead) -> HopperEntry[Lead]:
        lead = candidate.lead
        return HopperEntry(lead.lead_id, lead.phones[0], candidate.attempts, lead, candidate.priority,
                           owner_agent_id=candidate.callback_agent_id)

    async def _blocked(self, entry: HopperEntry[Lead], codes: Sequence[ReasonCode], now: float) -> None:
        self._count_blocks(codes)
        if set(codes) == {ReasonCode.GATE_UNAVAILABLE}:
            # Not a verdict on the lead (Redis slow or down): try again in a few seconds, not
            # after the long cool-down of a real block.
            self.hopper.put_back(entry, now + GATE_RETRY_SECONDS * (0.5 + random.random()))
            return
        if any(code in PERMANENT_BLOCKS for code in codes):
            self.hopper.put_back(entry, None)
            await self.services.records.put(RecordKind.CAMPAIGN_LEAD, campaign_lead_record(
                self.campaign_id, entry.lead_id, done=True, done_reason=",".join(c.value for c in codes)))
        else:
            # Outside the window, a holiday, a cap, the gate down: try again later.
            self.hopper.put_back(entry, now + self.settings.blocked_retry_seconds)

    async def speed_to_lead(self, lead: Lead) -> bool:
        """A fresh web lead goes to the head of the hopper (after the gate). With an agent of the
        campaign ready and a line free, it is dialed now, whatever the dial mode, on a line of its
        own: the pacer is not asked (it observes the dial like any other, so the line counts in
        its abandon budget); otherwise the next free agent's line takes it first."""
        if not self.running or not lead.phones:
            return False
        arrived = time.time()
        decision = (await self.services.gate.decide_many([contact_request(lead.phones[0], lead)], self.policy))[0]
        if not decision.allowed:
            self._count_blocks(decision.codes)
            return False
        self.hopper.push_front(HopperEntry(lead.lead_id, lead.phones[0], 0, lead, 1000), time.time())
        self.web_leads_arrived.setdefault(lead.lead_id, arrived)
        ready = self.floor.ready_agents(self.campaign_id)
        if ready and self.host.live_lines() < self.settings.max_lines:
            entry = self.hopper.take_lead(lead.lead_id)
            if entry is not None:
                await self.dial(entry)
                return True
        self.wake.set()
        return True

    async def dial(self, entry: HopperEntry[Lead]) -> None:
        """Check the gate once more (taking a cap slot) and have the lead originated into AMD."""
        now = time.time()
        if self.settings.trunk_router is not None and self.settings.trunk_router.capacity(now) == 0:
            # No trunk can take a call now (channels or calls per second): wait, before the gate
            # takes a frequency-cap slot for a call that could not go out.
            self.hopper.put_back(entry, now + 1.0)
            return
        decision = await decide_at_dial(self.services.gate, contact_request(entry.phone, entry.payload), self.policy,
                                        self.log)
        if decision is None or not decision.allowed:
            codes = decision.codes if decision is not None else (ReasonCode.GATE_UNAVAILABLE,)
            await self._blocked(entry, codes, now)
            return
        call_id = new_id(Prefix.CAMPAIGN_CALL)
        # On a cluster, the call goes to a node holding agents of the campaign (a bridge joins
        # channels of one node).
        slot = self.services.admission.try_admit(call_id, self.floor.agent_channels(self.campaign_id))
        if slot is None:
            # The node is full: the lead waits at the head of the hopper for the next line.
            self.hopper.put_back(entry, now + 1.0)
            return
        trunk = self.settings.route(call_id, now)
        if trunk is None:
            # Every trunk is at its channel limit or out of calls for this second: the lead waits.
            slot.release()
            self.hopper.put_back(entry, now + 1.0)
            return
        campaign = self.campaign
        try:
            amd_args = amd_arguments(campaign.amd_settings)
        except AmdSettingsError as error:
            self.log.error("amd_settings_invalid", error=str(error))
            amd_args = ""  # amd.conf's defaults: detection still runs
        request = CampaignCallRequest(
            call_id=call_id,
            campaign_id=self.campaign_id,
            lead_id=entry.lead_id,
            phone=entry.phone,
            caller_id=campaign.caller_id or self.settings.default_caller_id,
            decision_id=decision.decision_id,
            ring_timeout=self.settings.ring_timeout,
            machine_action=MachineAction(str(campaign.amd_settings.get("machine_action", "hangup"))),
            agent_wait=self.settings.agent_wait,
            recording_disclosure=decision.recording_disclosure,
            lead_endpoint=f"PJSIP/{entry.phone}@{trunk}",
            trunk=trunk,
            trunks=self.settings.trunk_count,
            decided_at=time.time(),  # this clock, not the gate's: only the age of the decision counts
            amd_args=amd_args,
        )
        await self.services.records.put(RecordKind.CAMPAIGN_LEAD, campaign_lead_record(
            self.campaign_id, entry.lead_id, attempts=entry.attempts + 1, last_attempt_at=utc(now),
            last_call_id=call_id))
        # Counted with no await before the call joins `calls` (originate registers it first): a
        # dial counted is a call live or finished, never one in between.
        self.counters["dials"] += 1
        await self.host.originate(self, entry, request, slot)
        arrived = self.web_leads_arrived.pop(entry.lead_id, None)
        if arrived is not None:
            self.host.web_lead_dialed(time.time() - arrived)

    async def call_finished(self, entry: HopperEntry[Lead], record: CampaignCallRecord) -> None:
        """Count a call's outcome and decide the lead's next attempt (the call stays among the
        campaign's calls until its runner is done: its recording archived)."""
        outcome = record.outcome.value if record.outcome else "failed"
        if record.inbound:
            self.counters[f"inbound_{outcome}"] += 1
            return
        self.host.call_ended(record)
        if self.settings.trunk_router is not None:  # its channel back; a 503 or a timeout: the next dials fail over
            self.settings.trunk_router.dial_ended(record.call_id, record.cause or 0, record.sip_code, time.time())
        # "answered" counts every answered call, whatever its outcome (once, also when the
        # outcome itself is "answered").
        if outcome != "answered":
            self.counters[outcome] += 1
        if record.answered_at is not None:
            self.counters["answered"] += 1
        if record.live_answer:
            self.counters["live_answers"] += 1
        if record.bridged_at is not None:
            self.counters["connected"] += 1
        if record.safe_harbor_played:
            self.counters["safe_harbor"] += 1
        if record.abandoned:
            self.counters["abandoned_calls"] += 1
        if record.opted_out:
            self.counters["opted_out"] += 1
        attempts = entry.attempts + 1
        decision = (RetryDecision(True, None, "opted out at the safe-harbor message") if record.opted_out
                    else after_attempt(outcome, attempts, time.time()))
        self.hopper.finished(entry.lead_id, decision)
        self.wake.set()  # a line is free: pace again now, not at the next tick
        await self.services.records.put(RecordKind.CAMPAIGN_LEAD, campaign_lead_record(
            self.campaign_id, entry.lead_id, attempts=attempts, last_outcome=outcome,
            last_call_id=record.call_id,
            next_attempt_at=None if decision.next_attempt_at is None else utc(decision.next_attempt_at),
            done=decision.done, done_reason=decision.reason if decision.done else None))
        if record.live_answer:
            # The abandon tally is read back from the calls rows (the truth), soon.
            self._tally_at = 0.0

    def observe(self, event: PacingEvent) -> None:
        self.pacer.observe(event)

    def wrap_ended(self, seconds: float) -> None:
        self.pacer.observe(PacingEvent(EventKind.WRAP_ENDED, time.time(), seconds))

    def status(self) -> CampaignStatus:
        states: Counter[str] = Counter(agent.session.state.value for agent in self.floor.of(self.campaign_id))
        return CampaignStatus(
            campaign_id=self.campaign_id, running=self.running, dial_mode=self.campaign.dial_mode.value,
            pacer=self.pacer.name, hopper=len(self.hopper), lines=len(self.calls),
            waiting=sum(1 for c in self.calls.values() if c.state is CampaignCallState.WAITING_AGENT),
            agents=dict(states), counters=dict(self.counters),
            blocked=self._blocks_today(),
            abandon_rate=self.tally.rate, live_answers=self.tally.live_answers, abandoned=self.tally.abandoned,
            paused=self.paused,
        )
