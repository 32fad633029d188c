"""The campaign runtime on Asterisk: agents on nailed-up legs (`dialer.campaign.agents`), one
dialing loop per running campaign (`dialer.campaign.dialing`), and one `CampaignCallRunner` per
call around the pure `CampaignCall` machine.

A dialed lead is originated into the dialplan context `dialer-amd`, which runs `AMD()` and then
enters the app. The call runner feeds ARI events to its machine in order and executes its
actions: the per-call bridge recorded before the lead joins it, a ready agent moved into it,
the safe-harbor message played into it, the press-9 opt-out, the agent's return to its holding
bridge in wrap-up. Calls to an agency number (a campaign's caller ID) enter the app as
`inbound`, are matched to a lead, answered, recorded, and wait with hold music for a ready agent
of that campaign, ahead of outbound work. Every snapshot goes to the CRM `calls` row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NoReturn, Protocol

import structlog

from compliance_rules.model import DialMode
from compliance_rules.numbers import parse_number
from compliance_rules.optout import OptOutSource
from crm_bridge.dispositions import PipelineStage
from crm_bridge.kinds import RecordKind
from crm_bridge.store import Call, Campaign, Lead
from dialer.ari.dispatch import Route
from dialer.ari.errors import AriError, NotFound
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
from dialer.campaign import actions as a
from dialer.campaign import inputs as i
from dialer.campaign.agent import AgentSession, AgentSnapshot, AgentState
from dialer.campaign.agents import AgentFloor, AgentRunner, StateStore
from dialer.campaign.dialing import (
    CampaignRunner,
    CampaignSettings,
    CampaignStatus,
    campaign_lead_record,
    pacer_for,
)
from dialer.campaign.hopper import HopperEntry, after_attempt
from dialer.campaign.machine import CampaignCall, CampaignCallRequest
from dialer.campaign.record import CampaignCallRecord, CampaignCallState
from dialer.pacing import Pacer, PacingEvent
from dialer.runtime.admission import Slot
from dialer.runtime.agents import active_agent, agent_endpoint, refuse_unknown_agent, why_phone_unreachable
from dialer.runtime.campaigns import known_campaign, not_running, refuse_not_running
from dialer.runtime.causes import sip_code, utc
from dialer.runtime.errors import Refused
from dialer.runtime.failover import next_trunk
from dialer.runtime.gate import contact_request, decide_at_dial
from dialer.runtime.ids import Prefix, new_id
from dialer.runtime.live import HangupBy, LiveCall
from dialer.runtime.placement import NODE_LOST
from dialer.runtime.reconcile import RESTARTED, closed_outcome
from dialer.runtime.recording import record_sides
from dialer.runtime.runner import MachineRunner, RunnerHost
from dialer.runtime.screen_pop import screen_pop
from dialer.runtime.services import CallServices
from dialer.runtime.slice import CallSlice

log = structlog.get_logger(__name__)

HOLD_MUSIC_REPEATS = 8  # ~13 s of music between two announcements of the caller's place


def placeholder_lead(lead_id: str, phone: str) -> Lead:
    """A lead the CRM does not know yet (an unknown inbound caller), as the screen pop shows it."""
    now = datetime.now(UTC)
    return Lead(lead_id=lead_id, first_name=None, last_name=None, phones=(phone,) if phone.startswith("+") else (),
                email=None, address_line1=None, address_line2=None, city=None, state=None, zip=None,
                timezone_hint=None, pipeline_stage=PipelineStage.NEW_LEAD, source="inbound", owner_agent_id=None,
                callback_at=None, needs_review=False, review_reason=None, created_at=now, updated_at=now)


def translate(event: Event, request: CampaignCallRequest, agent_channel: str | None,
              lead_channel: str | None = None) -> list[i.CallInput]:
    """The call inputs an ARI event means for this campaign call (`lead_channel`: the lead's
    current leg, another one after a retry on the next trunk)."""
    lead = lead_channel or request.lead_channel
    match event:
        case ChannelStateChange(channel=channel) if channel.id == lead and channel.state == "Up":
            return [i.LeadAnswered()]
        case ChannelStateChange(channel=channel) if channel.id == lead and channel.state == "Ringing":
            return [i.LeadRinging()]
        case StasisStart(channel=channel, args=args) if channel.id == lead and args and args[0] == "amd":
            status = args[1] if len(args) > 1 else "NOTSURE"
            return [i.AmdDecided(status=status or "NOTSURE", cause=args[2] if len(args) > 2 else "")]
        case ChannelEnteredBridge(channel=channel, bridge=bridge) if bridge.id == request.bridge_id:
            if channel is not None and agent_channel is not None and channel.id == agent_channel:
                return [i.AgentJoined()]
        case ChannelDtmfReceived(channel=channel, digit=digit) if channel.id == lead:
            return [i.DtmfReceived(digit)]
        case PlaybackFinished(playback=playback) if playback.id == request.safe_harbor_playback:
            return [i.PlaybackDone()]
        case ChannelDestroyed(channel=channel, cause=cause, tech_cause=tech, cause_txt=text) if channel.id == lead:
            return [i.LeadGone(cause=cause, sip_code=sip_code(tech), text=text, channel_id=channel.id)]
    return []


class CampaignCallHost(RunnerHost, Protocol):
    """What a campaign call asks of its runtime."""

    floor: AgentFloor

    def call_ending(self, call_id: str) -> None: ...

    async def reroute(self, runner: CampaignCallRunner, step: a.RerouteLead) -> i.CallInput: ...

    def route_of(self, call_id: str) -> Route | None: ...


class CampaignCallRunner(MachineRunner[i.CallInput, a.CallAction]):
    """One campaign call: its machine, its ordered inbox, and the task that runs its actions."""

    machine: CampaignCall

    def __init__(self, host: CampaignCallHost, services: CallServices, campaign: CampaignRunner,
                 machine: CampaignCall, entry: HopperEntry[Lead]) -> None:
        request = machine.request
        super().__init__(request.call_id, machine, host,
                         log.bind(call_id=request.call_id, lead_id=entry.lead_id, campaign_id=request.campaign_id))
        self.calls = host
        self.services = services
        self.campaign = campaign
        self.entry = entry
        self.request = request
        self.agent: AgentRunner | None = None
        # The call's hold on the node (admission control): set up once answered, released at its end.
        self.slot: Slot | None = None
        # The two sides recorded apart (agent, lead), when their snoops started: archived as
        # one two-channel recording (dialer.runtime.recording).
        self.legs: tuple[str, str] | None = None
        self._legs_task: asyncio.Task[None] | None = None

    # -- what the campaign and the floor see (`CampaignCall`, `AgentCall`) -----------------
    @property
    def call_id(self) -> str:
        return self.owner_id

    @property
    def campaign_id(self) -> str:
        return self.request.campaign_id

    @property
    def inbound(self) -> bool:
        return self.request.inbound

    @property
    def bridge_id(self) -> str:
        return self.request.bridge_id

    @property
    def owner_agent_id(self) -> str | None:
        return self.entry.owner_agent_id

    @property
    def state(self) -> CampaignCallState:
        return self.machine.state

    @property
    def requested_at(self) -> float:
        return self.machine.record.requested_at

    @property
    def record(self) -> CampaignCallRecord:
        return self.machine.record

    def stop(self) -> None:
        self.feed(i.Stop())

    def agent_assigned(self, agent: AgentRunner) -> None:
        self.agent = agent
        self.feed(i.AgentAssigned(agent_id=agent.agent_id, agent_channel=agent.channel_id))
        self.services.agent_events.publish(agent.agent_id, screen_pop(
            call_id=self.call_id, campaign_id=self.campaign_id, lead_id=self.entry.lead_id, phone=self.entry.phone,
            lead=self.entry.payload, direction="inbound" if self.inbound else "outbound"))

    def agent_left(self) -> None:
        self.feed(i.AgentLeft())

    # -- MachineRunner -------------------------------------------------------------------
    def translate(self, event: Event) -> list[i.CallInput]:
        return translate(event, self.request, self.agent.channel_id if self.agent else None,
                         self.machine.lead_channel)

    def ended(self) -> bool:
        return self.machine.state is CampaignCallState.ENDED

    @property
    def hold_playback(self) -> str:
        return f"{self.call_id}-hold"

    async def notice(self, event: Event) -> None:
        if self.request.inbound and isinstance(event, PlaybackFinished) and event.playback.id == self.hold_playback:
            await self._play_hold()

    async def _play_hold(self) -> None:
        """An inbound caller waiting for an agent hears their place in line, then hold music;
        when the music ends and they still wait, again (with the place updated)."""
        position = self.calls.floor.queue_position(self)
        if position is None or self.machine.state is not CampaignCallState.WAITING_AGENT:
            return
        announcement = (
            ["sound:queue-youarenext"]
            if position == 1
            else ["sound:queue-thereare", f"number:{position - 1}", "sound:queue-callswaiting"]
        )
        music = [await self.services.sounds.media("moh/hold-music")] * HOLD_MUSIC_REPEATS
        with contextlib.suppress(AriError):
            await self.services.ari.play_bridge(
                self.request.bridge_id, [*announcement, *music], playback_id=self.hold_playback
            )

    async def perform(self, action: a.CallAction) -> i.CallInput | None:
        services = self.services
        ari = services.ari
        try:
            match action:
                case a.OriginateLead(channel_id=channel_id, endpoint=endpoint, caller_id=caller_id,
                                     ring_timeout=ring_timeout, amd_args=amd_args):
                    try:
                        await ari.originate(channel_id, endpoint, context="dialer-amd", extension="s", priority=1,
                                            caller_id=caller_id, ring_timeout=ring_timeout,
                                            variables={"AMD_ARGS": amd_args})
                    except AriError as error:
                        return i.OriginateFailed(reason=str(error))
                    return i.Originated()
                case a.RerouteLead():
                    rerouted = await self.calls.reroute(self, action)
                    if isinstance(rerouted, i.RerouteFailed):
                        self.log.warning("trunk_failover_impossible", reason=rerouted.reason, tried=action.tried,
                                         cause=action.failed_cause, sip_code=action.failed_sip_code)
                    return rerouted
                case a.PrepareBridge(bridge_id=bridge_id, recording=name, lead_channel=lead):
                    try:
                        await ari.create_bridge(bridge_id, name=self.call_id)
                        # Record the call's bridge, started before anyone talks.
                        await ari.record_bridge(bridge_id, name, format="wav", if_exists="overwrite")
                        await ari.add_channel(bridge_id, lead)
                    except AriError as error:
                        return i.BridgeFailed(reason=str(error))
                    # Started beside the call, not before it: the agent joins without waiting
                    # (47 CFR 64.1200(a)(7): two seconds from the greeting's end).
                    self._legs_task = asyncio.create_task(self._record_legs(lead, name), name=f"legs-{self.call_id}")
                    return i.BridgeReady(recording=name)
                case a.WantAgent():
                    self.calls.floor.want_agent(self)
                    if self.request.inbound:
                        await self._play_hold()
                case a.CancelWant():
                    self.calls.floor.cancel_want(self)
                case a.ConnectAgent(agent_channel=channel, bridge_id=bridge_id):
                    if self.request.inbound:
                        with contextlib.suppress(NotFound):
                            await ari.stop_playback(self.hold_playback)
                    await ari.add_channel(bridge_id, channel)
                case a.PlaySafeHarbor(bridge_id=bridge_id, playback_id=playback_id):
                    # The campaign's own recording when it set one (prompts.safe_harbor), else the generated one.
                    prompt = self.campaign.campaign.prompts.get("safe_harbor")
                    media = f"sound:{prompt}" if prompt else await services.sounds.media("safe-harbor")
                    await ari.play_bridge(bridge_id, media, playback_id=playback_id)
                case a.PlayRecordingNotice(bridge_id=bridge_id, playback_id=playback_id):
                    await ari.play_bridge(bridge_id, await services.sounds.media("recording-notice"),
                                          playback_id=playback_id)
                case a.OptOutNumber(phone=phone, lead_id=lead_id, call_id=call_id):
                    # 47 CFR 64.1200(a)(7)(i)(B): the key press opts the number out at once.
                    await services.opt_outs.record(phone, OptOutSource.SAFE_HARBOR_KEY, lead_id=lead_id,
                                                   call_id=call_id, opt_out_id=f"{Prefix.OPT_OUT.value}{call_id}")
                case a.LeaveMessage(lead_channel=channel, recording=name):
                    # The dialplan records the drop as an ARI stored recording of this name.
                    await ari.set_variable(channel, "MESSAGE_RECORDING", name)
                    await ari.continue_in_dialplan(channel, context="dialer-machine-message", extension="s", priority=1)
                case a.HangupLead(lead_channel=channel, reason=reason):
                    with contextlib.suppress(NotFound):
                        await ari.hangup(channel, reason=reason)
                case a.ReturnAgent(joined=joined):
                    if self.agent is not None:
                        self.agent.return_from_call(self, joined=joined)
                        if not joined:
                            self.agent = None
                case a.TeardownBridge(bridge_id=bridge_id, recording=name):
                    await self._teardown(bridge_id, name)
                case a.Observe(kind=kind, seconds=seconds, outcome=outcome):
                    self.campaign.observe(PacingEvent(kind, time.time(), seconds, outcome))
                case a.Emit(record=record):
                    if record.answered_at is not None and self.slot is not None:
                        self.slot.set_up()
                    if record.state in (CampaignCallState.ENDING, CampaignCallState.ENDED):
                        self.calls.call_ending(self.call_id)
                    services.snapshots.submit(RecordKind.CALL, record.to_crm_call())
                    if record.state is CampaignCallState.BRIDGED and self.agent is not None:
                        self.agent.connected()
                case a.Finished(record=record):
                    if self.slot is not None:
                        self.slot.release()
                    await self.campaign.call_finished(self.entry, record)
                    if record.recording is not None:
                        legs = self.legs if self.legs and record.recording == self.request.recording else None
                        await services.archiver.archive(record.recording, call_id=record.call_id,
                                                        lead_id=record.lead_id,
                                                        line_of_business=self.campaign.campaign.line_of_business,
                                                        legs=legs)
        except AriError as error:
            # Teardown is best effort; anything else shows up as the channel's own events.
            self.log.warning("ari_action_failed", action=type(action).__name__, error=str(error))
        return None


    async def _record_legs(self, lead_channel: str, recording: str) -> None:
        """The two sides apart, from snoops on the lead's leg (in the bridge from the start; the
        agent's nailed-up leg joins later)."""
        self.legs = await record_sides(self.services.ari, self.services.app, self.call_id, recording, lead_channel,
                                       channel_is="lead", route=self.calls.route_of(self.call_id), log=self.log)

    async def _teardown(self, bridge_id: str, recording: str) -> None:
        """Stop the recording and destroy the call's bridge, each step on its own: a refused stop
        (the recording already over) must not leave the bridge behind; a failed destroy is tried
        once more."""
        ari = self.services.ari
        if self._legs_task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await asyncio.shield(self._legs_task)
        for name in (recording, *(self.legs or ())):
            try:
                await ari.stop_recording(name)
            except NotFound:
                pass
            except AriError as error:
                self.log.warning("recording_stop_failed", recording=name, error=str(error))
        for attempt in (1, 2):
            try:
                await ari.destroy_bridge(bridge_id)
                return
            except NotFound:
                return
            except AriError as error:
                self.log.warning("bridge_destroy_failed", bridge=bridge_id, attempt=attempt, error=str(error))
                await asyncio.sleep(0.2)


class CampaignRuntime(CallSlice[CampaignCallRunner]):
    """Agents and campaigns on one Asterisk; the HTTP API's campaign service."""

    name = "campaign"
    prefixes = (Prefix.CAMPAIGN_CALL, Prefix.AGENT_SESSION)

    def __init__(
        self,
        services: CallServices,
        states: StateStore,
        settings: CampaignSettings,
        *,
        pacer_factory: Callable[[Campaign], Pacer] = pacer_for,
    ) -> None:
        super().__init__(services.ari, services.dispatcher)
        self.services = services
        self.settings = settings
        self.pacer_factory = pacer_factory
        self.floor = AgentFloor(self, services, states, settings.redis_key, settings.wrap_up_seconds)
        self.campaigns: dict[str, CampaignRunner] = {}
        self._inbound_campaigns: dict[str, CampaignRunner] = {}
        # Called with each outbound call's final record, and with each web lead's wait for its
        # first dial (metrics, benchmarks); a listener that fails is logged, never the call's problem.
        self.finished_listeners: list[Callable[[CampaignCallRecord], None]] = []
        self.web_lead_listeners: list[Callable[[float], None]] = []

    @property
    def agents(self) -> dict[str, AgentRunner]:
        """The logged-in agents, by agent id."""
        return self.floor.agents

    @property
    def calls(self) -> dict[str, CampaignCallRunner]:
        """The live campaign calls, by call id."""
        return self.runners

    def live_lines(self) -> int:
        return len(self.runners)

    def call_ended(self, record: CampaignCallRecord) -> None:
        for listener in self.finished_listeners:
            try:
                listener(record)
            except Exception:
                log.exception("finished_listener_failed", call_id=record.call_id)

    def web_lead_dialed(self, waited_seconds: float) -> None:
        for listener in self.web_lead_listeners:
            try:
                listener(waited_seconds)
            except Exception:
                log.exception("web_lead_listener_failed")

    def owns(self, owner_id: str) -> bool:
        return owner_id in self.runners or self.floor.holds(owner_id)

    # -- AgentFloorHost ----------------------------------------------------------------------
    def agent_ready(self, campaign_ids: tuple[str, ...]) -> None:
        # A free agent is a line to dial now, not at the next pacing tick.
        for campaign_id in campaign_ids:
            runner = self.campaigns.get(campaign_id)
            if runner is not None:
                runner.wake.set()

    def wrap_ended(self, campaign_ids: tuple[str, ...], seconds: float) -> None:
        for campaign_id in campaign_ids:
            runner = self.campaigns.get(campaign_id)
            if runner is not None:
                runner.wrap_ended(seconds)

    # -- drain ---------------------------------------------------------------------------------
    async def stop_new_work(self) -> None:
        """Stop every campaign (calls not yet answered end; answered ones finish)."""
        for runner in list(self.campaigns.values()):
            await self.stop_campaign(runner.campaign_id)

    def hurry(self, runner: CampaignCallRunner) -> None:
        self.spawn(self._hang_up(runner.machine.lead_channel), f"hurry-{runner.call_id}")

    async def _hang_up(self, channel_id: str) -> None:
        with contextlib.suppress(AriError):
            await self.ari.hangup(channel_id, reason="normal")

    async def after_drain(self) -> None:
        """Log every agent out (their legs hung up), or leave the legs up for the next
        controller to take back (a rolling restart)."""
        for agent_id in list(self.agents):
            if self.settings.logout_on_shutdown:
                with contextlib.suppress(Refused, AriError):
                    await self.logout(agent_id)
            else:
                self.agents[agent_id].detach()
        await self._wait_agents(5.0)

    async def _wait_agents(self, seconds: float) -> None:
        waiting = [agent.done.wait() for agent in self.agents.values()]
        if waiting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await asyncio.gather(*waiting)

    # -- agents ------------------------------------------------------------------------------
    async def login(self, agent_id: str, campaign_ids: list[str] | tuple[str, ...]) -> AgentSnapshot:
        """Call the agent's endpoint once; it stays in the agent's holding bridge until logout."""
        self.refuse_unless_accepting("taking logins")
        store = self.services.store
        agent = await active_agent(store, agent_id, in_path=True)
        if agent_id in self.agents:
            raise Refused(409, "already_logged_in", f"agent {agent_id!r} is already logged in", field_name="agent_id")
        for campaign_id in campaign_ids:
            if await store.get_campaign(campaign_id) is None:
                raise Refused(422, "unknown_campaign", f"no campaign {campaign_id!r}", field_name="campaign_ids")
        session = AgentSession(agent_id, tuple(campaign_ids), new_id(Prefix.AGENT_SESSION), time.time(),
                               wrap_up_seconds=self.settings.wrap_up_seconds)
        runner = self.floor.start(session, agent_endpoint(agent.sip_endpoint, agent_id), self.spawn)
        try:
            await self.ari.originate(
                runner.channel_id, runner.endpoint, app=self.services.app, app_args=["agent-session", agent_id],
                caller_id='"Dialer login" <1000>', ring_timeout=self.settings.agent_ring_timeout,
            )
        except AriError as error:
            runner.apply(runner.session.leg_lost)
            reason = await why_phone_unreachable(self.ari, runner.endpoint, agent_id)
            raise reason or Refused(502, "agent_leg_failed", f"could not call {runner.endpoint}: {error}") from None
        return session.snapshot

    async def _agent(self, agent_id: str) -> AgentRunner:
        agent = self.agents.get(agent_id)
        if agent is None:
            await self.refuse_not_logged_in(agent_id)
        return agent

    async def refuse_not_logged_in(self, agent_id: str) -> NoReturn:
        """An agent with no session: 404 `not_logged_in` for every session endpoint (docs/api.md),
        or 404 `agent_not_found` when the CRM has no such agent at all. With PostgreSQL down the
        agent cannot be looked up, and the answer stays `not_logged_in` (true either way)."""
        await refuse_unknown_agent(self.services.store, agent_id)
        raise Refused(404, "not_logged_in", f"agent {agent_id!r} is not logged in", field_name="agent_id")

    async def logout(self, agent_id: str) -> AgentSnapshot:
        """Log out: at once when idle; after the call when on one (the call is not cut)."""
        agent = await self._agent(agent_id)
        return agent.apply(agent.session.logout)

    async def pause(self, agent_id: str, reason: str) -> AgentSnapshot:
        agent = await self._agent(agent_id)
        try:
            return agent.apply(lambda now: agent.session.pause(reason, now))
        except (ValueError, RuntimeError) as error:
            raise Refused(409, "invalid_agent_state", str(error)) from None

    async def ready(self, agent_id: str) -> AgentSnapshot:
        agent = await self._agent(agent_id)
        try:
            return agent.apply(agent.session.ready)
        except RuntimeError as error:
            raise Refused(409, "invalid_agent_state", str(error)) from None

    def agent_state(self, agent_id: str) -> AgentSnapshot | None:
        agent = self.agents.get(agent_id)
        return None if agent is None else agent.session.snapshot

    # -- CallControl -----------------------------------------------------------------------------
    def call_status(self, call_id: str) -> str | None:
        runner = self.runners.get(call_id)
        return None if runner is None else runner.state.value

    async def hangup(self, call_id: str, by: HangupBy) -> bool:
        runner = self.runners.get(call_id)
        if runner is None or runner.state in (CampaignCallState.ENDING, CampaignCallState.ENDED):
            return False
        runner.feed(i.HangupRequested(by=by.value))
        return True

    def queue_position(self, call: CampaignCallRunner) -> int | None:
        """1-based place of a waiting inbound caller among the inbound callers ahead of it."""
        return self.floor.queue_position(call)

    # -- live calls ------------------------------------------------------------------------------
    def describe(self, runner: CampaignCallRunner) -> LiveCall:
        request = runner.request
        agent = runner.agent
        state = runner.machine.state
        return LiveCall(
            call_id=runner.call_id, kind="campaign", direction="inbound" if request.inbound else "outbound",
            state=state.value, connected=state is CampaignCallState.BRIDGED and agent is not None,
            agent_id=agent.agent_id if agent else None, agent_channel=agent.channel_id if agent else None,
            bridge_id=request.bridge_id, lead_number=request.phone, campaign_id=request.campaign_id,
            started_at=utc(runner.machine.record.requested_at),
        )

    def forgotten(self, runner: CampaignCallRunner) -> None:
        if runner.slot is not None:
            runner.slot.release()  # idempotent: a runner that failed still gives its slot back
        if self.settings.trunk_router is not None:
            self.settings.trunk_router.release(runner.call_id)  # idempotent, as the slot
        runner.campaign.calls.pop(runner.call_id, None)
        self.floor.cancel_want(runner)

    # -- campaigns ----------------------------------------------------------------------------
    def _campaign_runner(self, campaign: Campaign, pacer: Pacer) -> CampaignRunner:
        return CampaignRunner(self, self.services, self.floor, self.settings, campaign, pacer)

    async def start_campaign(self, campaign_id: str, *, pacer: Pacer | None = None) -> CampaignStatus:
        self.refuse_unless_accepting("starting campaigns")
        existing = self.campaigns.get(campaign_id)
        if existing is not None and existing.running:
            return existing.status()
        campaign = await known_campaign(self.services.store, campaign_id)
        if not campaign.active:
            raise Refused(409, "campaign_inactive", f"campaign {campaign_id!r} is not active", field_name="campaign_id")
        if DialMode(campaign.dial_mode.value) is DialMode.MANUAL:
            raise Refused(409, "manual_campaign", "a manual campaign has nothing to pace")
        caller_id = self.settings.caller_id_check(campaign)
        if not caller_id.ok:
            # 16 CFR 310.4(a)(8): no call goes out with a caller ID the agency cannot be called back on.
            raise Refused(422, str(caller_id.code), caller_id.message, field_name="caller_id")
        runner = self._campaign_runner(campaign, pacer or self.pacer_factory(campaign))
        await runner.refresh_tally()
        await runner.load_blocks()
        self.campaigns[campaign_id] = runner
        self.spawn(runner.run(), f"campaign-{campaign_id}")
        log.info("campaign_started", campaign_id=campaign_id, pacer=runner.pacer.name)
        await self._remember_running(campaign_id, running=True)
        return runner.status()

    async def _remember_running(self, campaign_id: str, *, running: bool) -> None:
        """Keep the running campaigns where a controller taking over finds them (with a lease)."""
        key = self.settings.running_key
        if key is None:
            return
        try:
            async with asyncio.timeout(2.0):
                if running:
                    await self.floor.states.hset(key, campaign_id, "1")
                else:
                    await self.floor.states.hdel(key, campaign_id)
        except Exception as error:  # Redis down: the campaign runs; only a takeover would miss it
            log.warning("running_campaign_not_saved", campaign_id=campaign_id, error=repr(error))

    async def resume_running(self) -> list[str]:
        """Start the campaigns the previous controller was running (a takeover); those that
        cannot start any more (stopped meanwhile, made inactive) are forgotten."""
        key = self.settings.running_key
        if key is None:
            return []
        resumed = []
        for raw in await self.floor.states.hgetall(key):
            campaign_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                await self.start_campaign(campaign_id)
            except Refused as refused:
                log.warning("campaign_not_resumed", campaign_id=campaign_id, reason=refused.error)
                await self._remember_running(campaign_id, running=False)
                continue
            resumed.append(campaign_id)
        if resumed:
            log.warning("campaigns_resumed", campaigns=resumed)
        return resumed

    async def stop_campaign(self, campaign_id: str) -> CampaignStatus:
        """Stop dialing: queued leads are dropped, calls not yet answered are ended; answered
        calls (in AMD or with a person) finish normally."""
        runner = self.campaigns.get(campaign_id)
        if runner is None:
            await refuse_not_running(self.services.store, campaign_id)
        runner.stop()
        await self._remember_running(campaign_id, running=False)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await runner.stopped.wait()
        return runner.status()

    async def pause_campaign(self, campaign_id: str, paused: bool) -> tuple[bool, CampaignStatus]:
        """Pause (no new dials; the calls up finish) or resume a running campaign; whether it was
        paused before, and its figures."""
        runner = self.campaigns.get(campaign_id)
        if runner is None:
            await refuse_not_running(self.services.store, campaign_id)
        if not runner.running:  # stopped here: known, and no lookup needed (PostgreSQL may be down)
            raise not_running(campaign_id)
        was = runner.paused
        runner.paused = paused
        runner.wake.set()
        log.info("campaign_paused" if paused else "campaign_resumed", campaign_id=campaign_id)
        return was, runner.status()

    def change_settings(self, campaign: Campaign, *, repace: bool) -> None:
        """A running campaign's new settings (`dialer.campaign.control`), used from its next dial;
        `repace`: its dial mode or pacing target changed, so it gets a new pacer."""
        runner = self.campaigns.get(campaign.campaign_id)
        if runner is not None:
            runner.change_settings(campaign, self.pacer_factory(campaign) if repace else None)

    def campaign_status(self, campaign_id: str) -> CampaignStatus | None:
        """The campaign as the runtime last counted it (its abandon tally refreshed while it runs)."""
        runner = self.campaigns.get(campaign_id)
        return None if runner is None else runner.status()

    async def campaign_report(self, campaign_id: str) -> CampaignStatus:
        """The campaign with its abandon figures read from the calls rows now (during a run and
        after it stopped alike): what a regulator would recount. A campaign this controller has
        not run: 409 `campaign_not_running`, or 404 `campaign_not_found`."""
        runner = self.campaigns.get(campaign_id)
        if runner is None:
            await refuse_not_running(self.services.store, campaign_id)
        await runner.refresh_tally()
        return runner.status()

    def disposed(self, agent_id: str, call_id: str) -> None:
        """The agent sent the disposition of `call_id`: its wrap-up is over (ready, or paused if
        it asked to)."""
        agent = self.agents.get(agent_id)
        if agent is not None and agent.session.state is AgentState.WRAP_UP and agent.session.call_id == call_id:
            agent.apply(agent.session.disposed)

    async def speed_to_lead(self, campaign_id: str, lead: Lead) -> bool:
        """A fresh web lead goes to the head of a running campaign's hopper (after the gate)."""
        runner = self.campaigns.get(campaign_id)
        return runner is not None and await runner.speed_to_lead(lead)

    # -- placing a call (DialingHost) ------------------------------------------------------------
    def _start_call(self, campaign: CampaignRunner, entry: HopperEntry[Lead], machine: CampaignCall,
                    channel_ids: list[str]) -> CampaignCallRunner:
        runner = CampaignCallRunner(self, self.services, campaign, machine, entry)
        # Registered before the originate, so the first event already has its owner.
        self.start_runner(runner, channel_ids=channel_ids, bridge_ids=[machine.request.bridge_id])
        campaign.calls[runner.call_id] = runner
        return runner

    async def originate(
        self, campaign: CampaignRunner, entry: HopperEntry[Lead], request: CampaignCallRequest, slot: Slot
    ) -> None:
        """Start a campaign call for the lead (`DialingHost`), holding its admission slot: its
        machine originates it."""
        machine = CampaignCall(request, time.time())
        runner = self._start_call(campaign, entry, machine, [request.lead_channel])
        runner.slot = slot
        self.services.snapshots.submit(RecordKind.CALL, machine.record.to_crm_call())
        runner.feed(i.Dial())

    def route_of(self, call_id: str) -> Route | None:
        """The dispatcher's registration of a call (to route one more of its channels to it)."""
        return self.dispatcher.route(call_id)

    async def reroute(self, runner: CampaignCallRunner, step: a.RerouteLead) -> i.CallInput:
        """The same call on the next trunk (`CampaignCallHost`): the failed trunk gives its
        channel back and is marked down for a while; the next one in preference order with a
        free channel is taken; the gate decides again if its decision is too old; the new leg's
        channel id is routed to the call before anything is originated."""
        campaign = runner.campaign

        async def ask_gate() -> tuple[str, float] | str:
            decision = await decide_at_dial(self.services.gate, contact_request(step.phone, runner.entry.payload),
                                            campaign.policy, runner.log, reserve_attempt=False)
            if decision is None or not decision.allowed:
                return ",".join(code.value for code in decision.codes) if decision else "gate_unavailable"
            return decision.decision_id, time.time()

        return await next_trunk(self.settings.trunk_router, step, route=self.route_of(runner.call_id),
                                decision_id=runner.machine.record.decision_id, decided_at=runner.machine.decided_at,
                                ask_gate=ask_gate, log=runner.log,
                                unwanted=None if campaign.running else "the campaign stopped")

    # -- inbound -------------------------------------------------------------------------------
    async def _inbound_campaign(self, number: str, campaign_id: str = "") -> CampaignRunner | None:
        """The campaign the dialed agency number rings (running, or one that a logged-in agent
        works): the one its DID maps to (`campaign_id`, from the dialplan), else the one whose
        caller id it is."""
        def rings(campaign: Campaign) -> bool:
            return campaign.campaign_id == campaign_id if campaign_id else campaign.caller_id == number

        for runner in self.campaigns.values():
            if rings(runner.campaign):
                return runner
        known = {cid for agent in self.agents.values() for cid in agent.session.campaign_ids}
        for worked in sorted(known - set(self.campaigns)):
            existing = self._inbound_campaigns.get(worked)
            if existing is not None and rings(existing.campaign):
                return existing
            campaign = await self.services.store.get_campaign(worked)
            if campaign is not None and rings(campaign):
                runner = self._campaign_runner(campaign, self.pacer_factory(campaign))
                runner.running = False
                self._inbound_campaigns[worked] = runner
                return runner
        return None

    async def claim(self, event: Event) -> bool:
        """A call to an agency number enters the app as `inbound`."""
        if not (isinstance(event, StasisStart) and event.args and event.args[0] == "inbound"):
            return False
        try:
            await self._inbound(event)
        except Exception:
            log.exception("inbound_call_failed", channel=event.channel.id)
            with contextlib.suppress(AriError):
                await self.ari.hangup(event.channel.id, reason="normal")
        return True

    async def _inbound(self, event: StasisStart) -> None:
        """Match the caller to a lead, answer, record, hold music until a ready agent of the
        number's campaign takes it (ahead of outbound work)."""
        channel = event.channel
        number = parse_number(event.args[1] if len(event.args) > 1 else "").e164 or ""
        campaign = await self._inbound_campaign(number, event.args[2] if len(event.args) > 2 else "")
        if campaign is None:
            log.warning("inbound_no_campaign", number=number, channel=channel.id)
            await self.ari.hangup(channel.id, reason="busy")
            return
        caller = parse_number(channel.caller.number).e164 or channel.caller.number
        known = caller.startswith("+")
        leads = await self.services.store.find_leads_by_phone(caller) if known else []
        if leads:
            lead = leads[0]
        else:
            lead = placeholder_lead(new_id(Prefix.LEAD), caller)
            await self.services.records.put(RecordKind.LEAD_UPSERT, {
                "lead_id": lead.lead_id, "source": "inbound", **({"phones": [caller]} if known else {})})
        request = CampaignCallRequest(
            call_id=new_id(Prefix.CAMPAIGN_CALL), campaign_id=campaign.campaign_id, lead_id=lead.lead_id,
            phone=caller if known else number, caller_id=number, decision_id="", inbound=True,
            lead_channel_id=channel.id,
            # A caller's whereabouts are not checked by the gate: every inbound call is announced.
            recording_disclosure=True,
        )
        machine = CampaignCall(request, time.time())
        # The call's bridge goes where the caller's channel arrived (a cluster's node).
        self.services.placement.colocate(request.call_id, channel.id)
        runner = self._start_call(campaign, HopperEntry(lead.lead_id, request.phone, 0, lead), machine, [channel.id])
        await self.ari.answer(channel.id)
        runner.feed(i.InboundAnswered())

    async def follow_up_closed_calls(self, closed: list[Call]) -> int:
        """Campaign calls a dead controller left open (closed at start): their leads get the
        outcome and the next attempt the retry rules give, instead of being redialed at once."""
        now = datetime.now(UTC)
        followed = 0
        for call in closed:
            if not (call.campaign_id and call.lead_id and call.call_id.startswith(Prefix.CAMPAIGN_CALL.value)):
                continue
            outcome = closed_outcome(call)
            attempts = max(1, await self.services.store.campaign_lead_attempts(call.campaign_id, call.lead_id))
            decision = after_attempt(outcome, attempts, now.timestamp())
            await self.services.records.put(RecordKind.CAMPAIGN_LEAD, campaign_lead_record(
                call.campaign_id, call.lead_id, last_outcome=outcome, last_call_id=call.call_id,
                next_attempt_at=None if decision.next_attempt_at is None else utc(decision.next_attempt_at),
                done=decision.done, done_reason=RESTARTED if decision.done else None))
            followed += 1
        return followed

    # -- Asterisk connection -------------------------------------------------------------------
    async def on_connected(self, generation: int, snapshot: Snapshot) -> None:
        """After every (re)connect: follow the trunk's channels (dialplan originates into AMD
        are not in the app until AMD is done), adopt agent legs kept in Redis, clear orphans."""
        try:
            for trunk in self.settings.trunk_endpoints:
                await self.ari.subscribe(f"endpoint:PJSIP/{trunk}")
        except AriError as error:
            log.error("trunk_subscription_failed", error=str(error))
        live = {channel.id for channel in snapshot.channels}
        self._give_up_lost_node(live)
        await self._recover_agents(live)
        await self.sweep_orphans(generation, snapshot)

    def _give_up_lost_node(self, live: set[str]) -> None:
        """A cluster's node that stopped: its agents' legs and its calls are gone with it (no
        event will say so); the calls end (`node_lost`), the agents are logged out."""
        placement = self.services.placement
        # The calls first: their cause is the node, not the agent leaving them.
        for runner in list(self.runners.values()):
            if placement.lost(runner.call_id):
                runner.feed(i.LeadGone(cause=None, text=NODE_LOST))
        for agent in list(self.floor.agents.values()):
            if placement.lost(agent.channel_id) and agent.channel_id not in live:
                agent.leg_missing()

    async def _recover_agents(self, live: set[str]) -> None:
        """Agent sessions a previous controller (or connection) left: take back live legs as
        ready, log out the others."""
        floor = self.floor
        try:
            saved = await floor.states.hgetall(floor.redis_key)
        except Exception as error:
            log.warning("agent_states_unreadable", error=repr(error))
            return
        for raw_id, raw in saved.items():
            agent_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            if agent_id in self.agents:
                continue
            state = json.loads(raw)
            channel_id = str(state.get("channel_id", ""))
            if channel_id not in live or not channel_id.startswith(Prefix.AGENT_SESSION.value):
                await floor.states.hdel(floor.redis_key, agent_id)
                continue
            session = AgentSession(agent_id, tuple(state.get("campaign_ids", ())), channel_id, time.time(),
                                   wrap_up_seconds=self.settings.wrap_up_seconds)
            agent = floor.start(session, str(state.get("endpoint", "")), self.spawn)
            log.info("agent_session_recovered", agent_id=agent_id, was=state.get("state"))
            agent.adopt_leg()
