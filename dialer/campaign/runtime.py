"""The campaign runtime on Asterisk: agent sessions on nailed-up legs, one runner per campaign
(hopper, gate, pacer), and one runner per campaign call over the pure `CampaignCall` machine.

Agents: login originates the agent's endpoint (`PJSIP/agent1001`, or a simulated
`Local/ID@agent-sim`) into the app; once it answers it waits in the agent's own holding bridge.
The `AgentSession` machine keeps its state; every change is written to Redis (so a restarted
controller can take the legs back) and pushed on the agent's WebSocket.

Campaigns: every tick the runner builds a `PacingSnapshot` from the live agent states and the
campaign's calls, asks the pacer how many lines to open, takes that many leads from the hopper
(pre-checked by the gate in batches), asks the gate once more with a cap reservation right
before each originate, and originates the lead through the trunk into `dialer-amd`.

Calls: the runner feeds ARI events to its machine in order and executes its actions: the
per-call bridge recorded before the lead joins it, a ready agent moved into it, the
safe-harbor message played into it, the press-9 opt-out, the agent's return to its holding
bridge in wrap-up. Every snapshot goes to the CRM `calls` row through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog

from compliance_rules.gate import ComplianceGate
from compliance_rules.model import DialMode, ReasonCode
from compliance_rules.numbers import parse_number
from compliance_rules.optout import opt_out
from compliance_rules.store import DncStore
from crm_bridge.dispositions import PipelineStage
from crm_bridge.store import Campaign, CampaignLead, CrmStore, Lead
from dialer.ari.client import AriClient
from dialer.ari.dispatch import Dispatcher
from dialer.ari.errors import AriError, Conflict, NotFound
from dialer.ari.events import Snapshot
from dialer.ari.models import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelStateChange,
    Event,
    PlaybackFinished,
    StasisStart,
)
from dialer.ari.sounds import DialplanSounds
from dialer.campaign import call as cc
from dialer.campaign.agent import AgentSession, AgentSnapshot, AgentState, InvalidStateError
from dialer.campaign.amd import AmdSettingsError, amd_arguments
from dialer.campaign.hopper import Hopper, HopperEntry, RetryDecision, after_attempt
from dialer.pacing import (
    ABANDON_WINDOW_DAYS,
    AbandonTally,
    EventKind,
    Pacer,
    PacingEvent,
    PacingSnapshot,
    PowerPacer,
    PredictivePacer,
    PreviewPacer,
    ProgressivePacer,
)
from dialer.runtime.agent_events import AgentEventHub
from dialer.runtime.errors import CallRefused
from dialer.runtime.gate import contact_request, policy_for_campaign
from dialer.runtime.live import LiveCall
from dialer.runtime.runner import drive
from dialer.runtime.snapshots import SnapshotWriter
from recordings.archive import archive_recording
from recordings.crypto import Keyring

log = structlog.get_logger(__name__)

AGENT_PREFIX = "ags-"
CALL_PREFIX = "cmp-"
# Gate reasons that will not change by waiting: the lead's run in the campaign ends.
PERMANENT_BLOCKS = frozenset(
    {ReasonCode.INVALID_NUMBER, ReasonCode.DNC_FEDERAL, ReasonCode.DNC_STATE, ReasonCode.DNC_INTERNAL,
     ReasonCode.LITIGATOR, ReasonCode.OPTED_OUT, ReasonCode.CONSENT_MISSING, ReasonCode.UNKNOWN_LOCATION}
)


class RecordWriter(Protocol):
    async def put(self, kind: str, record: Mapping[str, object]) -> int: ...

    async def put_many(self, items: Sequence[tuple[str, Mapping[str, object]]]) -> list[int]: ...


class StateStore(Protocol):
    """Where agent states are kept (Redis hash): agent id -> JSON snapshot."""

    def hset(self, name: str, key: str, value: str) -> Awaitable[Any]: ...

    def hgetall(self, name: str) -> Awaitable[Any]: ...

    def hdel(self, name: str, *keys: str) -> Awaitable[Any]: ...


class CampaignError(CallRefused):
    """A request the campaign runtime refuses; `status`/`error`/`field` become the HTTP answer."""


@dataclass(frozen=True)
class CampaignSettings:
    """How the runtime runs campaigns (durations compress for tests and the demo)."""

    app: str
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
    # Recordings are sealed at rest with the keyring's current key (None: stored as recorded).
    keyring: Keyring | None = None

    def lead_endpoint(self, phone: str) -> str:
        return f"PJSIP/{phone}@{self.trunk_endpoint}"


def campaign_lead_record(campaign_id: str, lead_id: str, **fields: object) -> dict[str, object]:
    """A `campaign_lead` outbox record (membership of a lead in a campaign, or its history)."""
    return {"membership_id": f"{campaign_id}:{lead_id}", "campaign_id": campaign_id, "lead_id": lead_id, **fields}


def pacer_for(campaign: Campaign) -> Pacer:
    """The pacing engine's pacer for the campaign's dial mode."""
    mode = campaign.dial_mode.value
    if mode == "predictive":
        return PredictivePacer()
    if mode == "power":
        return PowerPacer(float(campaign.amd_settings.get("lines_per_agent", 2.0)))
    if mode == "preview":
        return PreviewPacer(float(campaign.amd_settings.get("preview_seconds", 5.0)))
    return ProgressivePacer()


def placeholder_lead(lead_id: str, phone: str) -> Lead:
    """A lead the CRM does not know yet (an unknown inbound caller), as the screen pop shows it."""
    now = datetime.now(UTC)
    return Lead(lead_id=lead_id, first_name=None, last_name=None, phones=(phone,) if phone.startswith("+") else (),
                email=None, address_line1=None, address_line2=None, city=None, state=None, zip=None,
                timezone_hint=None, pipeline_stage=PipelineStage.NEW_LEAD, source="inbound", owner_agent_id=None,
                callback_at=None, needs_review=False, review_reason=None, created_at=now, updated_at=now)


def _endpoint(sip_endpoint: str | None, agent_id: str) -> str:
    endpoint = sip_endpoint or agent_id
    return endpoint if "/" in endpoint else f"PJSIP/{endpoint}"


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


# ---- agents -------------------------------------------------------------------------------
class AgentLeg:
    """One logged-in agent: its session machine, its nailed-up channel and holding bridge."""

    def __init__(self, runtime: CampaignRuntime, session: AgentSession, endpoint: str) -> None:
        self.runtime = runtime
        self.session = session
        self.endpoint = endpoint
        self.route_id = session.channel_id
        self.hold_bridge = f"{session.channel_id}-hold"
        self.call: CampaignCallRunner | None = None
        self.log = log.bind(agent_id=session.agent_id)

    @property
    def agent_id(self) -> str:
        return self.session.agent_id

    @property
    def channel_id(self) -> str:
        return self.session.channel_id

    async def handle_event(self, event: Event, generation: int) -> None:
        del generation
        match event:
            case StasisStart(channel=channel) if channel.id == self.channel_id:
                await self.runtime._agent_leg_up(self)
            case ChannelDestroyed(channel=channel, cause=cause, cause_txt=text) if channel.id == self.channel_id:
                self.log.info("agent_leg_gone", cause=cause, cause_text=text, state=self.session.state.value)
                await self.runtime._agent_leg_lost(self)


# ---- calls -------------------------------------------------------------------------------
def translate(event: Event, request: cc.CampaignCallRequest, agent_channel: str | None) -> list[cc.CallInput]:
    """The call inputs an ARI event means for this campaign call."""
    lead = request.lead_channel
    match event:
        case ChannelStateChange(channel=channel) if channel.id == lead and channel.state == "Up":
            return [cc.LeadAnswered()]
        case StasisStart(channel=channel, args=args) if channel.id == lead and args and args[0] == "amd":
            status = args[1] if len(args) > 1 else "NOTSURE"
            return [cc.AmdDecided(status=status or "NOTSURE", cause=args[2] if len(args) > 2 else "")]
        case ChannelEnteredBridge(channel=channel, bridge=bridge) if bridge.id == request.bridge_id:
            if channel is not None and agent_channel is not None and channel.id == agent_channel:
                return [cc.AgentJoined()]
        case ChannelDtmfReceived(channel=channel, digit=digit) if channel.id == lead:
            return [cc.DtmfReceived(digit)]
        case PlaybackFinished(playback=playback) if playback.id == request.safe_harbor_playback:
            return [cc.PlaybackDone()]
        case ChannelDestroyed(channel=channel, cause=cause, tech_cause=tech, cause_txt=text) if channel.id == lead:
            sip_code = tech if tech and 100 <= tech <= 699 else None
            return [cc.LeadGone(cause=cause, sip_code=sip_code, text=text)]
    return []


class CampaignCallRunner:
    """One campaign call: its machine, its ordered inbox, and the task that runs its actions."""

    def __init__(self, campaign: CampaignRunner, machine: cc.CampaignCall, entry: HopperEntry[Lead]) -> None:
        self.campaign = campaign
        self.runtime = campaign.runtime
        self.machine = machine
        self.entry = entry
        self.request = machine.request
        self.inbox: asyncio.Queue[cc.CallInput] = asyncio.Queue()
        self.done = asyncio.Event()
        self.agent: AgentLeg | None = None
        self.log = log.bind(call_id=self.call_id, lead_id=entry.lead_id, campaign_id=campaign.campaign_id)

    @property
    def call_id(self) -> str:
        return self.request.call_id

    @property
    def state(self) -> cc.CampaignCallState:
        return self.machine.state

    @property
    def hold_playback(self) -> str:
        return f"{self.call_id}-hold"

    async def _play_hold(self) -> None:
        """An inbound caller waiting for an agent hears their place in line, then hold music;
        when the music ends and they still wait, again (with the place updated)."""
        position = self.runtime.queue_position(self)
        if position is None or self.machine.state is not cc.CampaignCallState.WAITING_AGENT:
            return
        announcement = (
            ["sound:queue-youarenext"]
            if position == 1
            else ["sound:queue-thereare", f"number:{position - 1}", "sound:queue-callswaiting"]
        )
        music = [await self.runtime.sounds.media("moh/hold-music")] * HOLD_MUSIC_REPEATS
        with contextlib.suppress(AriError):
            await self.runtime.ari.play_bridge(
                self.request.bridge_id, [*announcement, *music], playback_id=self.hold_playback
            )

    async def handle_event(self, event: Event, generation: int) -> None:
        del generation
        if (
            self.request.inbound
            and isinstance(event, PlaybackFinished)
            and event.playback.id == self.hold_playback
        ):
            await self._play_hold()
        agent_channel = self.agent.channel_id if self.agent else None
        for item in translate(event, self.request, agent_channel):
            self.inbox.put_nowait(item)

    def feed(self, item: cc.CallInput) -> None:
        self.inbox.put_nowait(item)

    async def run(self) -> None:
        try:
            await drive(
                self.machine, self.inbox, self._execute, lambda: self.machine.state is cc.CampaignCallState.ENDED
            )
        except Exception:
            self.log.exception("campaign_call_failed")
        finally:
            self.done.set()
            self.runtime._forget_call(self)

    async def _execute(self, actions: list[cc.CallAction]) -> None:
        pending = list(actions)
        while pending:
            follow_up = await self._do(pending.pop(0))
            if follow_up is not None:
                pending.extend(self.machine.handle(follow_up, time.time()))

    async def _do(self, action: cc.CallAction) -> cc.CallInput | None:
        runtime = self.runtime
        ari = runtime.ari
        try:
            match action:
                case cc.PrepareBridge(bridge_id=bridge_id, recording=name, lead_channel=lead):
                    try:
                        await ari.create_bridge(bridge_id, name=self.call_id)
                        # design.md decision 6: record the call's bridge, started before anyone talks.
                        await ari.record_bridge(bridge_id, name, format="wav", if_exists="overwrite")
                        await ari.add_channel(bridge_id, lead)
                    except AriError as error:
                        return cc.BridgeFailed(reason=str(error))
                    return cc.BridgeReady(recording=name)
                case cc.WantAgent():
                    runtime._want_agent(self)
                    if self.request.inbound:
                        await self._play_hold()
                case cc.CancelWant():
                    runtime._cancel_want(self)
                case cc.ConnectAgent(agent_channel=channel, bridge_id=bridge_id):
                    if self.request.inbound:
                        with contextlib.suppress(NotFound):
                            await ari.stop_playback(self.hold_playback)
                    await ari.add_channel(bridge_id, channel)
                case cc.PlaySafeHarbor(bridge_id=bridge_id, playback_id=playback_id):
                    await ari.play_bridge(bridge_id, await runtime.sounds.media("safe-harbor"), playback_id=playback_id)
                case cc.PlayRecordingNotice(bridge_id=bridge_id, playback_id=playback_id):
                    await ari.play_bridge(bridge_id, await runtime.sounds.media("recording-notice"),
                                          playback_id=playback_id)
                case cc.OptOutNumber(phone=phone, lead_id=lead_id, call_id=call_id):
                    await runtime._opt_out(phone, lead_id, call_id)
                    self.campaign.counters["opted_out"] += 1
                case cc.LeaveMessage(lead_channel=channel, recording=name):
                    # The dialplan records the drop as an ARI stored recording of this name.
                    await ari.set_variable(channel, "MESSAGE_RECORDING", name)
                    await ari.continue_in_dialplan(channel, context="dialer-machine-message", extension="s", priority=1)
                case cc.HangupLead(lead_channel=channel, reason=reason):
                    with contextlib.suppress(NotFound):
                        await ari.hangup(channel, reason=reason)
                case cc.ReturnAgent(agent_id=agent_id, joined=joined):
                    await runtime._return_agent(agent_id, self, joined=joined)
                case cc.TeardownBridge(bridge_id=bridge_id, recording=name):
                    with contextlib.suppress(NotFound):
                        await ari.stop_recording(name)
                    with contextlib.suppress(NotFound):
                        await ari.destroy_bridge(bridge_id)
                case cc.Observe(kind=kind, seconds=seconds, outcome=outcome):
                    self.campaign.pacer.observe(PacingEvent(kind, time.time(), seconds, outcome))
                case cc.Emit(record=record):
                    if record.state in (cc.CampaignCallState.ENDING, cc.CampaignCallState.ENDED):
                        runtime._call_ending(self.call_id)
                    await runtime.log_snapshot(record.to_crm_call())
                    if record.state is cc.CampaignCallState.BRIDGED and self.agent is not None:
                        await runtime._agent_connected(self.agent)
                case cc.Finished(record=record):
                    await self.campaign._call_finished(self, record)
        except AriError as error:
            # Teardown is best effort; anything else shows up as the channel's own events.
            self.log.warning("ari_action_failed", action=type(action).__name__, error=str(error))
        return None


# ---- campaigns ----------------------------------------------------------------------------
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

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


class CampaignRunner:
    """One running campaign: hopper, pacer, and its live calls."""

    def __init__(self, runtime: CampaignRuntime, campaign: Campaign, pacer: Pacer) -> None:
        self.runtime = runtime
        self.campaign = campaign
        self.campaign_id = campaign.campaign_id
        self.pacer = pacer
        self.hopper: Hopper[Lead] = Hopper(runtime.settings.hopper_size)
        self.calls: dict[str, CampaignCallRunner] = {}
        self.counters: Counter[str] = Counter()
        self.blocked: Counter[str] = Counter()
        self.tally = AbandonTally()
        self.running = True
        self.stopped = asyncio.Event()
        self._tally_at = 0.0
        self._refill_at = 0.0
        self.wake = asyncio.Event()
        self.log = log.bind(campaign_id=self.campaign_id)

    # -- the pacing loop ---------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while self.running:
                try:
                    await self._tick()
                except Exception:
                    self.log.exception("campaign_tick_failed")
                # The pacing tick; a speed-to-lead lead, a newly ready agent or a call's end wakes it early.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.runtime.settings.tick_seconds):
                        await self.wake.wait()
                self.wake.clear()
        finally:
            self.stopped.set()

    def snapshot(self, now: float) -> PacingSnapshot:
        ready, talking, wrapping, paused = [], [], [], 0
        for leg in self.runtime.agents.values():
            session = leg.session
            if self.campaign_id not in session.campaign_ids:
                continue
            match session.state:
                case AgentState.READY:
                    ready.append(session.since)
                case AgentState.RESERVED | AgentState.ON_CALL:
                    talking.append(session.since)
                case AgentState.WRAP_UP:
                    wrapping.append(session.since)
                case AgentState.PAUSED:
                    paused += 1
        ringing = [c.machine.record.requested_at for c in self.calls.values()
                   if c.state in (cc.CampaignCallState.DIALING, cc.CampaignCallState.ANSWERED)]
        waiting = sum(1 for c in self.calls.values() if c.state is cc.CampaignCallState.WAITING_AGENT)
        free = max(0, self.runtime.settings.max_lines - self.runtime.live_lines())
        return PacingSnapshot(tuple(ready), tuple(talking), tuple(wrapping), paused, tuple(ringing), waiting, free,
                              self.tally)

    async def _tick(self) -> None:
        now = time.time()
        if now - self._tally_at >= self.runtime.settings.tally_refresh_seconds:
            await self.refresh_tally()
        if len(self.hopper) < self.hopper.target_size // 2 and now >= self._refill_at:
            added = await self.refill(now)
            self._refill_at = now + (1.0 if added else 3.0)
        snapshot = self.snapshot(now)
        if snapshot.logged_in_agents == 0:
            return
        lines = min(self.pacer.decide(snapshot, now), snapshot.free_lines)
        for _ in range(lines):
            if not self.running:
                break
            entry = self.hopper.take(self.ready_agents())
            if entry is None:
                break
            await self.dial(entry)

    async def refresh_tally(self) -> None:
        since = datetime.now(UTC) - timedelta(days=ABANDON_WINDOW_DAYS)
        tally = await self.runtime.store.abandon_tally(self.campaign_id, since)
        self.tally = AbandonTally(live_answers=tally.answered, abandoned=tally.abandoned)
        self._tally_at = time.time()

    async def refill(self, now: float) -> int:
        """Load due leads from the CRM and pre-check them with the gate in one batch."""
        candidates = await self.runtime.store.due_campaign_leads(
            self.campaign_id, _utc(now), limit=self.hopper.wanted(), exclude=sorted(self.hopper.excluded(now))
        )
        if not candidates:
            return 0
        decisions = await self.runtime.gate.decide_many(
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

    @property
    def policy(self) -> Any:
        return policy_for_campaign(self.campaign)

    @staticmethod
    def _entry(candidate: CampaignLead) -> HopperEntry[Lead]:
        lead = candidate.lead
        return HopperEntry(lead.lead_id, lead.phones[0], candidate.attempts, lead, candidate.priority,
                           owner_agent_id=candidate.callback_agent_id)

    async def _blocked(self, entry: HopperEntry[Lead], codes: Sequence[ReasonCode], now: float) -> None:
        for code in codes:
            self.blocked[code.value] += 1
        if any(code in PERMANENT_BLOCKS for code in codes):
            self.hopper.put_back(entry, None)
            await self.runtime.records.put("campaign_lead", campaign_lead_record(
                self.campaign_id, entry.lead_id, done=True, done_reason=",".join(c.value for c in codes)))
        else:
            # Outside the window, a holiday, a cap, the gate down: try again later.
            self.hopper.put_back(entry, now + self.runtime.settings.blocked_retry_seconds)

    async def dial(self, entry: HopperEntry[Lead]) -> None:
        """Check the gate once more (taking a cap slot) and originate the lead into AMD."""
        runtime = self.runtime
        lead = entry.payload
        now = time.time()
        decision = await runtime.gate.decide(contact_request(entry.phone, lead), self.policy, reserve_attempt=True)
        if not decision.allowed:
            await self._blocked(entry, decision.codes, now)
            return
        call_id = f"{CALL_PREFIX}{uuid.uuid4().hex}"
        campaign = self.campaign
        action = cc.MachineAction(str(campaign.amd_settings.get("machine_action", "hangup")))
        request = cc.CampaignCallRequest(
            call_id=call_id,
            campaign_id=self.campaign_id,
            lead_id=entry.lead_id,
            phone=entry.phone,
            caller_id=campaign.caller_id or runtime.settings.default_caller_id,
            decision_id=decision.decision_id,
            ring_timeout=max(cc.MIN_RING_SECONDS, runtime.settings.ring_timeout),
            machine_action=action,
            agent_wait=runtime.settings.agent_wait,
            recording_disclosure=decision.recording_disclosure,
        )
        machine = cc.CampaignCall(request, now)
        runner = CampaignCallRunner(self, machine, entry)
        # Registered before the originate, so the first event already has its owner.
        runtime.dispatcher.register(call_id, runner, channel_ids=[request.lead_channel], bridge_ids=[request.bridge_id])
        self.calls[call_id] = runner
        runtime.calls[call_id] = runner
        self.counters["dials"] += 1
        await runtime.records.put("campaign_lead", campaign_lead_record(
            self.campaign_id, entry.lead_id, attempts=entry.attempts + 1, last_attempt_at=_utc(now),
            last_call_id=call_id))
        await runtime.records.put("call", machine.record.to_crm_call())
        runtime.spawn(runner.run(), f"campaign-call-{call_id}")
        try:
            amd_args = amd_arguments(self.campaign.amd_settings)
        except AmdSettingsError as error:
            log.error("amd_settings_invalid", campaign_id=self.campaign_id, error=str(error))
            amd_args = ""  # amd.conf's defaults: detection still runs
        try:
            # 47 CFR 64.1200(a)(6): ring at least 15 s; AMD runs in the dialplan (design.md decision 5).
            await runtime.ari.originate(
                request.lead_channel,
                runtime.settings.lead_endpoint(entry.phone),
                context="dialer-amd",
                extension="s",
                priority=1,
                caller_id=request.caller_id,
                ring_timeout=request.ring_timeout,
                variables={"AMD_ARGS": amd_args},
            )
        except AriError as error:
            runner.feed(cc.OriginateFailed(reason=str(error)))
            return
        runner.feed(cc.Originated())

    async def _call_finished(self, runner: CampaignCallRunner, record: cc.CampaignCallRecord) -> None:
        outcome = record.outcome.value if record.outcome else "failed"
        if record.inbound:
            self.counters[f"inbound_{outcome}"] += 1
            if record.recording is not None:
                await self.runtime._archive(record.recording, record.call_id, record.lead_id)
            return
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
        attempts = runner.entry.attempts + 1
        decision = (RetryDecision(True, None, "opted out at the safe-harbor message") if record.opted_out
                    else after_attempt(outcome, attempts, time.time()))
        self.hopper.finished(runner.entry.lead_id, decision)
        self.wake.set()  # a line is free: pace again now, not at the next tick
        await self.runtime.records.put("campaign_lead", campaign_lead_record(
            self.campaign_id, runner.entry.lead_id, attempts=attempts, last_outcome=outcome,
            last_call_id=runner.call_id,
            next_attempt_at=None if decision.next_attempt_at is None else _utc(decision.next_attempt_at),
            done=decision.done, done_reason=decision.reason if decision.done else None))
        if record.recording is not None:
            await self.runtime._archive(record.recording, record.call_id, record.lead_id)
        if record.live_answer:
            # The abandon tally is read back from the calls rows (the truth), soon.
            self._tally_at = 0.0

    def ready_agents(self) -> frozenset[str]:
        """Agents of this campaign free to take a call now."""
        return frozenset(leg.agent_id for leg in self.runtime.agents.values()
                         if leg.session.available and self.campaign_id in leg.session.campaign_ids)

    def status(self) -> CampaignStatus:
        states: Counter[str] = Counter()
        for leg in self.runtime.agents.values():
            if self.campaign_id in leg.session.campaign_ids:
                states[leg.session.state.value] += 1
        return CampaignStatus(
            campaign_id=self.campaign_id, running=self.running, dial_mode=self.campaign.dial_mode.value,
            pacer=self.pacer.name, hopper=len(self.hopper), lines=len(self.calls),
            waiting=sum(1 for c in self.calls.values() if c.state is cc.CampaignCallState.WAITING_AGENT),
            agents=dict(states), counters=dict(self.counters), blocked=dict(self.blocked),
            abandon_rate=self.tally.rate, live_answers=self.tally.live_answers, abandoned=self.tally.abandoned,
        )


# ---- the runtime --------------------------------------------------------------------------
HOLD_MUSIC_REPEATS = 8  # ~13 s of music between two announcements of the caller's place


@dataclass
class _Waiting:
    runner: CampaignCallRunner
    since: float = field(default_factory=time.time)


class CampaignRuntime:
    """Agent sessions and campaigns on one Asterisk; the HTTP API's `CampaignService`."""

    def __init__(
        self,
        ari: AriClient,
        dispatcher: Dispatcher,
        gate: ComplianceGate,
        dnc: DncStore,
        store: CrmStore,
        records: RecordWriter,
        agent_events: AgentEventHub,
        states: StateStore,
        settings: CampaignSettings,
        *,
        pacer_factory: Callable[[Campaign], Pacer] = pacer_for,
    ) -> None:
        self.ari = ari
        self.dispatcher = dispatcher
        self.gate = gate
        self.dnc = dnc
        self.store = store
        self.records = records
        # Writes call snapshots behind the call flow (set by the service); None: write inline.
        self.snapshots: SnapshotWriter | None = None
        self.agent_events = agent_events
        self.states = states
        self.settings = settings
        self.pacer_factory = pacer_factory
        self.agents: dict[str, AgentLeg] = {}
        self.campaigns: dict[str, CampaignRunner] = {}
        self.calls: dict[str, CampaignCallRunner] = {}
        self._waiting: deque[_Waiting] = deque()
        self._inbound_runners: dict[str, CampaignRunner] = {}
        # Called once with the call id when a call starts ending (supervisors' monitors end with it).
        self.call_end_listeners: list[Callable[[str], None]] = []
        self._ending: set[str] = set()
        self._tasks: asyncio.TaskGroup | None = None
        self.sounds = DialplanSounds(ari)
        self._accepting = False

    # -- lifecycle -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CampaignRuntime]:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            self._accepting = True
            timers = tasks.create_task(self._agent_timers(), name="campaign-agent-timers")
            try:
                yield self
            finally:
                self._accepting = False
                timers.cancel()
                self._tasks = None

    def spawn(self, coroutine: Any, name: str) -> None:
        if self._tasks is None:
            coroutine.close()
            raise CampaignError(503, "shutting_down", "the dialer is not running campaigns")
        self._tasks.create_task(coroutine, name=name)

    async def drain(self, deadline_seconds: float) -> None:
        """Stop every campaign, let live calls end within the deadline, log every agent out."""
        self._accepting = False
        for runner in list(self.campaigns.values()):
            await self.stop_campaign(runner.campaign_id)
        waiting = [call.done.wait() for call in self.calls.values()]
        if waiting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline_seconds):
                    await asyncio.gather(*waiting)
        for call in list(self.calls.values()):
            with contextlib.suppress(AriError):
                await self.ari.hangup(call.request.lead_channel, reason="normal")
        if self.settings.logout_on_shutdown:
            for agent_id in list(self.agents):
                with contextlib.suppress(CampaignError, AriError):
                    await self.logout(agent_id)

    def live_lines(self) -> int:
        return len(self.calls)

    async def _agent_timers(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            now = time.time()
            for leg in list(self.agents.values()):
                deadline = leg.session.next_timer()
                if deadline is not None and now >= deadline:
                    was = leg.session.since
                    snapshot = leg.session.handle_timer(now)
                    if snapshot is not None:
                        self._observe_wrap(leg, now - was)
                        await self._publish(leg, snapshot)

    # -- agents ------------------------------------------------------------------------------
    async def login(self, agent_id: str, campaign_ids: Sequence[str]) -> AgentSnapshot:
        """Call the agent's endpoint once; it stays in the agent's holding bridge until logout."""
        if not self._accepting:
            raise CampaignError(503, "shutting_down", "the dialer is not taking logins")
        agent = await self.store.get_agent(agent_id)
        if agent is None:
            raise CampaignError(422, "unknown_agent", f"no agent {agent_id!r}", field_name="agent_id")
        if not agent.active:
            raise CampaignError(409, "agent_inactive", f"agent {agent_id!r} is not active", field_name="agent_id")
        if agent_id in self.agents:
            raise CampaignError(409, "already_logged_in", f"agent {agent_id!r} is already logged in",
                                field_name="agent_id")
        for campaign_id in campaign_ids:
            if await self.store.get_campaign(campaign_id) is None:
                raise CampaignError(422, "unknown_campaign", f"no campaign {campaign_id!r}", field_name="campaign_ids")
        channel_id = f"{AGENT_PREFIX}{uuid.uuid4().hex[:16]}"
        session = AgentSession(agent_id, tuple(campaign_ids), channel_id, time.time(),
                               wrap_up_seconds=self.settings.wrap_up_seconds)
        leg = AgentLeg(self, session, _endpoint(agent.sip_endpoint, agent_id))
        self.dispatcher.register(leg.route_id, leg, channel_ids=[channel_id], bridge_ids=[leg.hold_bridge])
        self.agents[agent_id] = leg
        await self._publish(leg, session.snapshot)
        try:
            await self.ari.originate(
                channel_id, leg.endpoint, app=self.settings.app, app_args=["agent-session", agent_id],
                caller_id='"Dialer login" <1000>', ring_timeout=self.settings.agent_ring_timeout,
            )
        except AriError as error:
            await self._agent_leg_lost(leg)
            raise CampaignError(502, "agent_leg_failed", f"could not call {leg.endpoint}: {error}") from None
        return session.snapshot

    async def _agent_leg_up(self, leg: AgentLeg) -> None:
        try:
            with contextlib.suppress(Conflict):  # a recovered session's bridge may still exist
                await self.ari.create_bridge(leg.hold_bridge, name=f"hold {leg.agent_id}")
            await self.ari.add_channel(leg.hold_bridge, leg.channel_id)
        except AriError as error:
            leg.log.error("agent_holding_bridge_failed", error=str(error))
            with contextlib.suppress(AriError):
                await self.ari.hangup(leg.channel_id)
            return
        with contextlib.suppress(InvalidStateError):
            await self._publish(leg, leg.session.leg_up(time.time()))
            self._offer(leg)

    async def _agent_leg_lost(self, leg: AgentLeg) -> None:
        """The leg is gone: the session ends; a call the agent was on ends with it."""
        snapshot = leg.session.leg_lost(time.time())
        self.agents.pop(leg.agent_id, None)
        self.dispatcher.unregister(leg.route_id)
        if leg.call is not None:
            leg.call.feed(cc.AgentLeft())
        with contextlib.suppress(AriError):
            await self.ari.destroy_bridge(leg.hold_bridge)
        await self._publish(leg, snapshot)

    async def logout(self, agent_id: str) -> AgentSnapshot:
        leg = self._leg(agent_id)
        snapshot = leg.session.logout(time.time())
        if snapshot.state is AgentState.LOGGED_OUT:
            await self._end_leg(leg)
        else:
            await self._publish(leg, snapshot)
        return snapshot

    async def _end_leg(self, leg: AgentLeg) -> None:
        with contextlib.suppress(NotFound):
            await self.ari.hangup(leg.channel_id, reason="normal")
        # The ChannelDestroyed that follows completes the logout (_agent_leg_lost).

    async def pause(self, agent_id: str, reason: str) -> AgentSnapshot:
        leg = self._leg(agent_id)
        try:
            snapshot = leg.session.pause(reason, time.time())
        except (InvalidStateError, ValueError) as error:
            raise CampaignError(409, "invalid_agent_state", str(error)) from None
        await self._publish(leg, snapshot)
        return snapshot

    async def ready(self, agent_id: str) -> AgentSnapshot:
        leg = self._leg(agent_id)
        was = leg.session.state
        since = leg.session.since
        try:
            snapshot = leg.session.ready(time.time())
        except InvalidStateError as error:
            raise CampaignError(409, "invalid_agent_state", str(error)) from None
        if was is AgentState.WRAP_UP:
            self._observe_wrap(leg, time.time() - since)
        await self._publish(leg, snapshot)
        self._offer(leg)
        return snapshot

    def agent_state(self, agent_id: str) -> AgentSnapshot | None:
        leg = self.agents.get(agent_id)
        return None if leg is None else leg.session.snapshot

    def _leg(self, agent_id: str) -> AgentLeg:
        leg = self.agents.get(agent_id)
        if leg is None:
            raise CampaignError(409, "not_logged_in", f"agent {agent_id!r} is not logged in", field_name="agent_id")
        return leg

    def _observe_wrap(self, leg: AgentLeg, seconds: float) -> None:
        for campaign_id in leg.session.campaign_ids:
            runner = self.campaigns.get(campaign_id)
            if runner is not None:
                runner.pacer.observe(PacingEvent(EventKind.WRAP_ENDED, time.time(), seconds))

    async def _publish(self, leg: AgentLeg, snapshot: AgentSnapshot) -> None:
        message = snapshot.to_json()
        self.agent_events.publish(leg.agent_id, message)
        if snapshot.state is AgentState.READY:
            # A free agent is a line to dial now, not at the next pacing tick.
            for campaign_id in leg.session.campaign_ids:
                runner = self.campaigns.get(campaign_id)
                if runner is not None:
                    runner.wake.set()
        try:
            if snapshot.state is AgentState.LOGGED_OUT:
                await self.states.hdel(self.settings.redis_key, leg.agent_id)
            else:
                await self.states.hset(self.settings.redis_key, leg.agent_id,
                                       json.dumps({**message, "endpoint": leg.endpoint}))
        except Exception as error:  # Redis down: the session goes on; only recovery suffers
            leg.log.warning("agent_state_not_saved", error=repr(error))
        leg.log.debug("agent_state", state=snapshot.state.value, version=snapshot.version)

    # -- matching answered calls with agents -------------------------------------------------
    def _want_agent(self, runner: CampaignCallRunner) -> None:
        leg = self._pick_agent(runner.campaign.campaign_id, runner.entry.owner_agent_id)
        if leg is None:
            waiting = _Waiting(runner)
            if runner.request.inbound:
                # Inbound callers go ahead of outbound work (after earlier inbound callers).
                position = next((i for i, w in enumerate(self._waiting) if not w.runner.request.inbound),
                                len(self._waiting))
                self._waiting.insert(position, waiting)
            else:
                self._waiting.append(waiting)
            return
        self._assign(leg, runner)

    def queue_position(self, runner: CampaignCallRunner) -> int | None:
        """1-based place of a waiting inbound caller among the inbound callers ahead of it."""
        inbound = [w.runner for w in self._waiting if w.runner.request.inbound]
        return inbound.index(runner) + 1 if runner in inbound else None

    def _cancel_want(self, runner: CampaignCallRunner) -> None:
        self._waiting = deque(w for w in self._waiting if w.runner is not runner)

    def _pick_agent(self, campaign_id: str, owner: str | None = None) -> AgentLeg | None:
        ready = [leg for leg in self.agents.values()
                 if leg.session.available and campaign_id in leg.session.campaign_ids]
        # A callback goes to the agent who owns it when that agent is free; else to anyone ready,
        # rather than leave the person unattended (47 CFR 64.1200(a)(7)).
        owned = [leg for leg in ready if leg.agent_id == owner]
        if owned:
            return owned[0]
        # The agent ready the longest takes the call (fair share of the work).
        return min(ready, key=lambda leg: leg.session.since, default=None)

    def _assign(self, leg: AgentLeg, runner: CampaignCallRunner) -> None:
        leg.session.reserve(runner.call_id, time.time())
        leg.call = runner
        runner.agent = leg
        runner.feed(cc.AgentAssigned(agent_id=leg.agent_id, agent_channel=leg.channel_id))
        self.agent_events.publish(leg.agent_id, self._screen_pop(runner))
        self.agent_events.publish(leg.agent_id, leg.session.snapshot.to_json())
        self.spawn(self._save(leg), f"agent-state-{leg.agent_id}")

    async def _save(self, leg: AgentLeg) -> None:
        with contextlib.suppress(Exception):
            await self.states.hset(self.settings.redis_key, leg.agent_id,
                                   json.dumps({**leg.session.snapshot.to_json(), "endpoint": leg.endpoint}))

    def _offer(self, leg: AgentLeg) -> None:
        """A ready agent takes the oldest answered call of its campaigns that waits for one."""
        if not leg.session.available:
            return
        for waiting in list(self._waiting):
            if waiting.runner.campaign.campaign_id in leg.session.campaign_ids:
                self._waiting.remove(waiting)
                self._assign(leg, waiting.runner)
                return

    def _screen_pop(self, runner: CampaignCallRunner) -> dict[str, object]:
        lead = runner.entry.payload
        return {
            "type": "screen_pop",
            "call_id": runner.call_id,
            "campaign_id": runner.campaign.campaign_id,
            "lead": {
                "lead_id": lead.lead_id,
                "name": " ".join(p for p in (lead.first_name, lead.last_name) if p) or runner.entry.phone,
                "phone": runner.entry.phone,
                "state": lead.state,
                "zip": lead.zip,
                "pipeline_stage": lead.pipeline_stage.value,
                "email": lead.email,
            },
        }

    async def _agent_connected(self, leg: AgentLeg) -> None:
        if leg.session.state is AgentState.RESERVED:
            await self._publish(leg, leg.session.connected(time.time()))

    async def _return_agent(self, agent_id: str, runner: CampaignCallRunner, *, joined: bool) -> None:
        leg = self.agents.get(agent_id)
        runner.agent = runner.agent if joined else None
        if leg is None or leg.call is not runner:
            return
        leg.call = None
        now = time.time()
        if leg.session.state is AgentState.RESERVED and joined:
            leg.session.connected(now)
        with contextlib.suppress(AriError):
            await self.ari.add_channel(leg.hold_bridge, leg.channel_id)
        try:
            snapshot = leg.session.call_ended(now) if joined else leg.session.release(now)
        except InvalidStateError:
            return
        if snapshot.state is AgentState.LOGGED_OUT:
            await self._end_leg(leg)
        await self._publish(leg, snapshot)
        self._offer(leg)

    def _call_ending(self, call_id: str) -> None:
        if call_id in self._ending:
            return
        self._ending.add(call_id)
        for listener in self.call_end_listeners:
            try:
                listener(call_id)
            except Exception:
                log.exception("call_end_listener_failed", call_id=call_id)

    def live_calls(self) -> list[LiveCall]:
        """The calls in progress, as a supervisor's wallboard shows them."""
        return [self._live(runner) for runner in list(self.calls.values())]

    def live_call(self, call_id: str) -> LiveCall | None:
        runner = self.calls.get(call_id)
        return None if runner is None else self._live(runner)

    @staticmethod
    def _live(runner: CampaignCallRunner) -> LiveCall:
        request = runner.request
        agent = runner.agent
        state = runner.machine.state
        return LiveCall(
            call_id=runner.call_id, kind="campaign", direction="inbound" if request.inbound else "outbound",
            state=state.value, connected=state is cc.CampaignCallState.BRIDGED and agent is not None,
            agent_id=agent.agent_id if agent else None, agent_channel=agent.channel_id if agent else None,
            bridge_id=request.bridge_id, lead_number=request.phone, campaign_id=request.campaign_id,
            started_at=_utc(runner.machine.record.requested_at),
        )

    def _forget_call(self, runner: CampaignCallRunner) -> None:
        self._call_ending(runner.call_id)
        self._ending.discard(runner.call_id)
        self.calls.pop(runner.call_id, None)
        runner.campaign.calls.pop(runner.call_id, None)
        self._cancel_want(runner)
        self.dispatcher.unregister(runner.call_id)

    async def _opt_out(self, phone: str, lead_id: str, call_id: str) -> None:
        # In Redis first: the very next gate decision for the number is blocked.
        result = await opt_out(self.dnc, phone, "safe_harbor_key", lead_id=lead_id)
        await self.records.put("opt_out", {"opt_out_id": f"opt_{call_id}", "phone": result.phone,
                                           "source": result.source.value, "lead_id": lead_id, "call_id": call_id,
                                           "created_at": result.recorded_at})

    async def _archive(self, name: str, call_id: str, lead_id: str) -> None:
        try:
            archived = await archive_recording(self.ari, name, self.settings.recordings_dir,
                                               keyring=self.settings.keyring)
        except Exception as error:
            log.error("recording_not_archived", recording=name, call_id=call_id, error=repr(error))
            return
        await self.records.put("recording", archived.to_record(call_id=call_id, lead_id=lead_id))

    # -- campaigns ----------------------------------------------------------------------------
    async def start_campaign(self, campaign_id: str, *, pacer: Pacer | None = None) -> CampaignStatus:
        if not self._accepting:
            raise CampaignError(503, "shutting_down", "the dialer is not starting campaigns")
        existing = self.campaigns.get(campaign_id)
        if existing is not None and existing.running:
            return existing.status()
        campaign = await self.store.get_campaign(campaign_id)
        if campaign is None:
            raise CampaignError(404, "unknown_campaign", f"no campaign {campaign_id!r}", field_name="campaign_id")
        if not campaign.active:
            raise CampaignError(409, "campaign_inactive", f"campaign {campaign_id!r} is not active",
                                field_name="campaign_id")
        if DialMode(campaign.dial_mode.value) is DialMode.MANUAL:
            raise CampaignError(409, "manual_campaign", "a manual campaign has nothing to pace")
        runner = CampaignRunner(self, campaign, pacer or self.pacer_factory(campaign))
        await runner.refresh_tally()
        self.campaigns[campaign_id] = runner
        self.spawn(runner.run(), f"campaign-{campaign_id}")
        log.info("campaign_started", campaign_id=campaign_id, pacer=runner.pacer.name)
        return runner.status()

    async def stop_campaign(self, campaign_id: str) -> CampaignStatus:
        """Stop dialing: queued leads are dropped, calls not yet answered are ended; answered
        calls (in AMD or with a person) finish normally."""
        runner = self.campaigns.get(campaign_id)
        if runner is None:
            raise CampaignError(404, "campaign_not_running", f"campaign {campaign_id!r} is not running",
                                field_name="campaign_id")
        runner.running = False
        runner.hopper.clear()
        for call in list(runner.calls.values()):
            call.feed(cc.Stop())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await runner.stopped.wait()
        return runner.status()

    async def log_snapshot(self, snapshot: Mapping[str, object]) -> None:
        """A call's CRM row: behind the call flow when a snapshot writer runs, else durably now."""
        if self.snapshots is not None:
            self.snapshots.submit("call", snapshot)
        else:
            await self.records.put("call", snapshot)

    def campaign_status(self, campaign_id: str) -> CampaignStatus | None:
        runner = self.campaigns.get(campaign_id)
        return None if runner is None else runner.status()

    async def speed_to_lead(self, campaign_id: str, lead: Lead) -> bool:
        """A fresh web lead goes to the head of a running campaign's hopper (after the gate)."""
        runner = self.campaigns.get(campaign_id)
        if runner is None or not runner.running or not lead.phones:
            return False
        decision = (await self.gate.decide_many([contact_request(lead.phones[0], lead)], runner.policy))[0]
        if not decision.allowed:
            for code in decision.codes:
                runner.blocked[code.value] += 1
            return False
        runner.hopper.push_front(HopperEntry(lead.lead_id, lead.phones[0], 0, lead, 1000), time.time())
        runner.wake.set()
        return True

    # -- inbound -------------------------------------------------------------------------------
    async def _inbound_campaign(self, number: str) -> CampaignRunner | None:
        """The campaign whose caller id is the dialed agency number (running, or one that a
        logged-in agent works)."""
        for runner in self.campaigns.values():
            if runner.campaign.caller_id == number:
                return runner
        known = {cid for leg in self.agents.values() for cid in leg.session.campaign_ids}
        for campaign_id in sorted(known - set(self.campaigns)):
            existing = self._inbound_runners.get(campaign_id)
            if existing is not None and existing.campaign.caller_id == number:
                return existing
            campaign = await self.store.get_campaign(campaign_id)
            if campaign is not None and campaign.caller_id == number:
                runner = CampaignRunner(self, campaign, self.pacer_factory(campaign))
                runner.running = False
                self._inbound_runners[campaign_id] = runner
                return runner
        return None

    async def _inbound(self, event: StasisStart) -> None:
        """A call to an agency number: match the caller to a lead, answer, record, hold music
        until a ready agent of the number's campaign takes it (ahead of outbound work)."""
        channel = event.channel
        number = parse_number(event.args[1] if len(event.args) > 1 else "").e164 or ""
        campaign = await self._inbound_campaign(number)
        if campaign is None:
            log.warning("inbound_no_campaign", number=number, channel=channel.id)
            await self.ari.hangup(channel.id, reason="busy")
            return
        caller = parse_number(channel.caller.number).e164 or channel.caller.number
        leads = await self.store.find_leads_by_phone(caller) if caller.startswith("+") else []
        if leads:
            lead = leads[0]
        else:
            lead = placeholder_lead(f"lead-{uuid.uuid4().hex}", caller)
            await self.records.put("lead_upsert", {"lead_id": lead.lead_id, "source": "inbound",
                                                   **({"phones": [caller]} if caller.startswith("+") else {})})
        call_id = f"{CALL_PREFIX}{uuid.uuid4().hex}"
        request = cc.CampaignCallRequest(
            call_id=call_id, campaign_id=campaign.campaign_id, lead_id=lead.lead_id, phone=caller if caller.startswith(
                "+") else number, caller_id=number, decision_id="", inbound=True, lead_channel_id=channel.id,
            # A caller's whereabouts are not checked by the gate: every inbound call is announced.
            recording_disclosure=True,
        )
        machine = cc.CampaignCall(request, time.time())
        runner = CampaignCallRunner(campaign, machine, HopperEntry(lead.lead_id, request.phone, 0, lead))
        self.dispatcher.register(call_id, runner, channel_ids=[channel.id], bridge_ids=[request.bridge_id])
        campaign.calls[call_id] = runner
        self.calls[call_id] = runner
        self.spawn(runner.run(), f"inbound-call-{call_id}")
        await self.ari.answer(channel.id)
        runner.feed(cc.InboundAnswered())

    # -- Asterisk connection -------------------------------------------------------------------
    async def on_connected(self, generation: int, snapshot: Snapshot) -> None:
        """After every (re)connect: follow the trunk's channels (dialplan originates into AMD
        are not in the app until AMD is done), adopt agent legs kept in Redis, clear orphans."""
        try:
            await self.ari.subscribe(f"endpoint:PJSIP/{self.settings.trunk_endpoint}")
        except AriError as error:
            log.error("trunk_subscription_failed", error=str(error))
        live = {channel.id for channel in snapshot.channels}
        await self._recover_agents(live)
        ours = [c.id for c in snapshot.channels
                if c.id.startswith(CALL_PREFIX) and c.id.split(";")[0].removesuffix("-lead") not in self.calls]
        agents = {leg.channel_id for leg in self.agents.values()}
        # A Local agent's other half is named "<id>;2": it belongs to the same session.
        ours += [c.id for c in snapshot.channels
                 if c.id.startswith(AGENT_PREFIX) and c.id.split(";")[0] not in agents]
        for channel_id in ours:
            with contextlib.suppress(AriError):
                await self.ari.hangup(channel_id, reason="normal")
        bridges = [b.id for b in snapshot.bridges
                   if (b.id.startswith(CALL_PREFIX) and b.id.removesuffix("-bridge") not in self.calls)
                   or (b.id.startswith(AGENT_PREFIX) and b.id.removesuffix("-hold") not in agents)]
        for bridge_id in bridges:
            with contextlib.suppress(AriError):
                await self.ari.destroy_bridge(bridge_id)
        if ours or bridges:
            log.warning("campaign_orphans_cleared", generation=generation, channels=ours, bridges=bridges)

    async def _recover_agents(self, live: set[str]) -> None:
        """Agent sessions a previous controller (or connection) left: take back live legs as
        ready, log out the others."""
        try:
            saved = await self.states.hgetall(self.settings.redis_key)
        except Exception as error:
            log.warning("agent_states_unreadable", error=repr(error))
            return
        for raw_id, raw in saved.items():
            agent_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            if agent_id in self.agents:
                continue
            state = json.loads(raw)
            channel_id = str(state.get("channel_id", ""))
            if channel_id not in live or not channel_id.startswith(AGENT_PREFIX):
                await self.states.hdel(self.settings.redis_key, agent_id)
                continue
            session = AgentSession(agent_id, tuple(state.get("campaign_ids", ())), channel_id, time.time(),
                                   wrap_up_seconds=self.settings.wrap_up_seconds)
            leg = AgentLeg(self, session, str(state.get("endpoint", "")))
            self.dispatcher.register(leg.route_id, leg, channel_ids=[channel_id], bridge_ids=[leg.hold_bridge])
            self.agents[agent_id] = leg
            log.info("agent_session_recovered", agent_id=agent_id, was=state.get("state"))
            await self._agent_leg_up(leg)

    async def on_unrouted(self, event: Event, generation: int) -> None:
        del generation
        if isinstance(event, StasisStart) and event.args and event.args[0] == "inbound":
            try:
                await self._inbound(event)
            except Exception:
                log.exception("inbound_call_failed", channel=event.channel.id)
                with contextlib.suppress(AriError):
                    await self.ari.hangup(event.channel.id, reason="normal")
            return
        if isinstance(event, StasisStart):
            channel_id = event.channel.id
            if channel_id.startswith((CALL_PREFIX, AGENT_PREFIX)):
                # A leg of a call or session this controller does not run: hang it up.
                with contextlib.suppress(AriError):
                    await self.ari.hangup(channel_id, reason="normal")
