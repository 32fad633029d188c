"""Click-to-call on Asterisk: one `ClickToCallRunner` per call around the pure `CallMachine`.

Before a call is requested the gate decides (blocked: nothing is created, the decision is
audited). When the agent answers, the call's bridge is made and recorded, then the gate is
asked again at that instant (`decide_at_dial`, reserving a frequency-cap slot), and only then
is the lead dialed. Every snapshot of the call goes to the CRM `calls` row (behind the call
flow) and to the agent's event stream; when the call is over its recording is archived.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from compliance_rules.model import DialMode
from compliance_rules.telemarketing import MIN_RING_SECONDS
from crm_bridge.kinds import RecordKind
from crm_bridge.store import Campaign, Lead
from dialer.ari.dispatch import Route
from dialer.ari.errors import AriError, NotFound
from dialer.ari.events import Snapshot
from dialer.ari.models import (
    ChannelDestroyed,
    ChannelEnteredBridge,
    ChannelStateChange,
    Event,
    RecordingFailed,
    RecordingStarted,
    StasisStart,
)
from dialer.campaign.agent import AgentSnapshot, agent_state_record
from dialer.click_to_call import inputs
from dialer.click_to_call.actions import (
    AddToBridge,
    CallAction,
    CallIds,
    CheckGate,
    CreateBridge,
    DestroyBridge,
    DialLead,
    Emit,
    Finished,
    HangupChannel,
    OriginateAgent,
    PlayRecordingNotice,
    RerouteLead,
    ScreenPop,
    StartRecording,
    StopRecording,
)
from dialer.click_to_call.inputs import CallInput, Leg, Rerouted, RerouteFailed
from dialer.click_to_call.machine import CallMachine, CallRequest, CallTimeouts
from dialer.click_to_call.presence import ClickToCallPresence
from dialer.click_to_call.record import CallRecord, CallState
from dialer.click_to_call.requests import DialRequest, PlacedCall
from dialer.provision.trunks import TrunkRouter
from dialer.runtime import callerid
from dialer.runtime.admission import Slot
from dialer.runtime.agents import active_agent, agent_endpoint, why_phone_unreachable
from dialer.runtime.causes import sip_code
from dialer.runtime.errors import BlockedReason, ComplianceBlocked, Refused
from dialer.runtime.failover import next_trunk
from dialer.runtime.gate import contact_request, decide_at_dial, policy_for_campaign
from dialer.runtime.hold import hold_music
from dialer.runtime.ids import Prefix, new_id
from dialer.runtime.live import HangupBy, LiveCall
from dialer.runtime.recording import record_sides
from dialer.runtime.runner import MachineRunner, RunnerHost
from dialer.runtime.screen_pop import lead_name, screen_pop
from dialer.runtime.services import CallServices
from dialer.runtime.slice import CallSlice

log = structlog.get_logger(__name__)

STASIS_ENTRY_TIMEOUT = 5.0
# A requested call waiting for the node's admission (a status, not a machine state).
QUEUED = "queued"


@dataclass(frozen=True)
class ClickToCallSettings:
    trunk_endpoint: str = "trunk"
    default_caller_id: str = "+18885550100"
    timeouts: CallTimeouts = field(default_factory=CallTimeouts)
    # The carriers' trunks, shared with the campaigns: preference order, channels, calls per
    # second, failover (None: every call through `trunk_endpoint`).
    trunk_router: TrunkRouter | None = None
    # A click-to-call-only agent's wrap-up after a conversation, unless the disposition comes
    # first; and how long it counts as ready without a call (dialer.click_to_call.presence).
    wrap_up_seconds: float = 30.0
    idle_seconds: float = 600.0

    @property
    def trunk_count(self) -> int:
        """How many trunks a call may try (same-call failover)."""
        return max(1, len(self.trunk_router.trunks)) if self.trunk_router else 1

    def route(self, call_id: str, now: float) -> str | None:
        """The trunk of a new call (its channel given back at the call's end), or None when every
        trunk is at its limits."""
        return self.trunk_router.route(now, key=call_id) if self.trunk_router else self.trunk_endpoint


def translate(event: Event, ids: CallIds) -> list[CallInput]:
    """The call inputs an ARI event means for the call with these ids."""
    match event:
        case StasisStart(channel=channel) if channel.id == ids.agent_channel:
            # The agent leg is originated into the app: it enters Stasis when answered.
            return [inputs.AgentAnswered()]
        case ChannelStateChange(channel=channel):
            state = channel.state
            if channel.id == ids.agent_channel and state == "Ringing":
                return [inputs.AgentRinging()]
            if channel.id == ids.lead_channel and state in {"Ringing", "Ring"}:
                return [inputs.LeadRinging()]
            if channel.id == ids.lead_channel and state == "Up":
                return [inputs.LeadAnswered()]
        case ChannelDestroyed(channel=channel, cause=cause, tech_cause=tech_cause, cause_txt=text):
            if channel.id == ids.agent_channel:
                return [inputs.AgentHungUp(cause=cause, sip_code=sip_code(tech_cause), cause_text=text)]
            if channel.id == ids.lead_channel:
                return [inputs.LeadHungUp(cause=cause, sip_code=sip_code(tech_cause), cause_text=text,
                                          channel_id=channel.id)]
        case ChannelEnteredBridge(channel=channel, bridge=bridge):
            if channel is not None and channel.id == ids.lead_channel and bridge.id == ids.bridge:
                return [inputs.LeadJoined()]
        case RecordingStarted(recording=recording) if recording.name == ids.recording:
            return [inputs.RecordingStarted(name=recording.name)]
        case RecordingFailed(recording=recording) if recording.name == ids.recording:
            return [inputs.RecordingFailed(reason=recording.cause or "recording failed")]
    return []


class ClickToCallHost(RunnerHost, Protocol):
    """What a call runner tells its runtime."""

    async def agent_call_state(self, record: CallRecord) -> None: ...

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None: ...

    def call_ending(self, call_id: str) -> None: ...

    def route_of(self, call_id: str) -> Route | None: ...

    async def reroute(self, runner: ClickToCallRunner, step: RerouteLead) -> Rerouted | RerouteFailed: ...


class ClickToCallRunner(MachineRunner[CallInput, CallAction]):
    """One call: its machine, ordered inbox and task; the lead and campaign as requested."""

    machine: CallMachine

    def __init__(
        self,
        host: ClickToCallHost,
        services: CallServices,
        machine: CallMachine,
        lead: Lead | None,
        campaign: Campaign | None,
    ) -> None:
        request = machine.request
        super().__init__(
            request.call_id, machine, host,
            log.bind(call_id=request.call_id, lead_id=request.lead_id, agent_id=request.agent_id,
                     campaign_id=request.campaign_id),
        )
        self.calls = host
        self.services = services
        # Kept from the request: the dial check must not depend on PostgreSQL answering mid-call.
        self.lead = lead
        self.campaign = campaign
        # Set at the lead channel's StasisStart: a created channel must be in Stasis before it is dialed.
        self.lead_in_stasis = asyncio.Event()
        # The two sides recorded apart (agent, lead) from snoops on the agent's leg, when they
        # started: archived as one two-channel recording (dialer.runtime.recording).
        self.legs: tuple[str, str] | None = None
        # Set once the sides' recordings started or gave up (`_record_sides`, a task of the
        # runtime's group); None while they were never asked for.
        self._sides_done: asyncio.Event | None = None
        # The call's hold on the node (admission control); None while it waits in the queue.
        self.slot: Slot | None = None

    @property
    def call_id(self) -> str:
        return self.owner_id

    @property
    def ids(self) -> CallIds:
        """The call's Asterisk ids; the lead's leg changes with a trunk failover."""
        return self.machine.ids

    def translate(self, event: Event) -> list[CallInput]:
        return translate(event, self.ids)

    def ended(self) -> bool:
        return self.machine.state is CallState.ENDED

    async def notice(self, event: Event) -> None:
        if isinstance(event, StasisStart) and event.channel.id == self.ids.lead_channel:
            self.lead_in_stasis.set()
        await hold_music(self.services.ari, event, agent_channel=self.ids.agent_channel, bridge_id=self.ids.bridge)

    async def perform(self, action: CallAction) -> CallInput | None:
        services = self.services
        ari = services.ari
        try:
            match action:
                case OriginateAgent(channel_id=channel_id, endpoint=endpoint, timeout=timeout, caller_name=name,
                                    caller_number=number):
                    try:
                        await ari.originate(
                            channel_id, endpoint, app=services.app, app_args=["agent", self.call_id],
                            caller_id=callerid.caller_id(name, number), ring_timeout=max(1, round(timeout)),
                        )
                    except AriError as error:
                        # Asked only after a refusal, as a login does: in a cluster the phones
                        # register at the edge, and Asterisk's endpoint says nothing beforehand.
                        why = await why_phone_unreachable(ari, endpoint, self.machine.request.agent_id)
                        return inputs.OriginateFailed(leg=Leg.AGENT, reason=str(why or error),
                                                      problem=why.error if why else None)
                case ScreenPop(call_id=call_id, agent_id=agent_id, lead_id=lead_id, campaign_id=campaign_id,
                               lead_number=phone):
                    services.agent_events.publish(agent_id, screen_pop(
                        call_id=call_id, campaign_id=campaign_id, lead_id=lead_id, phone=phone, lead=self.lead))
                case CreateBridge(bridge_id=bridge_id):
                    try:
                        await ari.create_bridge(bridge_id, name=self.call_id)
                    except AriError as error:
                        return inputs.BridgeFailed(reason=str(error))
                    return inputs.BridgeCreated()
                case AddToBridge(bridge_id=bridge_id, channel_id=channel_id):
                    await ari.add_channel(bridge_id, channel_id)
                case StartRecording(bridge_id=bridge_id, name=name):
                    try:
                        await ari.record_bridge(bridge_id, name, format="wav", if_exists="overwrite")
                    except AriError as error:
                        return inputs.RecordingFailed(reason=str(error))
                    # Beside the call, not before it: the lead is dialed without waiting.
                    self._sides_done = asyncio.Event()
                    try:
                        self.calls.spawn(self._record_sides(name, self._sides_done), f"legs-{self.call_id}")
                    except Refused:
                        self._sides_done.set()  # shutting down: the bridge's mixed recording is the record
                case CheckGate(lead_number=phone):
                    return await self._check_gate(phone)
                case DialLead():
                    return await self._dial_lead(action)
                case RerouteLead():
                    rerouted = await self.calls.reroute(self, action)
                    if isinstance(rerouted, RerouteFailed):
                        self.log.warning("trunk_failover_impossible", reason=rerouted.reason, tried=action.tried,
                                         cause=action.failed_cause, sip_code=action.failed_sip_code)
                    return rerouted
                case HangupChannel(channel_id=channel_id, reason=reason):
                    with contextlib.suppress(NotFound):
                        await ari.hangup(channel_id, reason=reason)
                case PlayRecordingNotice(bridge_id=bridge_id, playback_id=playback_id):
                    await ari.play_bridge(bridge_id, await services.sounds.media("recording-notice"),
                                          playback_id=playback_id)
                case StopRecording(name=name):
                    await self._sides_started()
                    for recording in (name, *(self.legs or ())):
                        with contextlib.suppress(NotFound):
                            await ari.stop_recording(recording)
                case DestroyBridge(bridge_id=bridge_id):
                    with contextlib.suppress(NotFound):
                        await ari.destroy_bridge(bridge_id)
                case Emit(record=record):
                    if record.state in (CallState.BRIDGED, CallState.ENDING, CallState.ENDED) and self.slot:
                        self.slot.set_up()
                    if record.state in (CallState.ENDING, CallState.ENDED):
                        self.calls.call_ending(self.call_id)
                    services.snapshots.submit(RecordKind.CALL, record.to_crm_call())
                    await self.calls.agent_call_state(record)
                    services.agent_events.publish(record.agent_id, {
                        "type": "call_state", "call_id": self.call_id, "state": record.state.value,
                        "outcome": record.outcome.value if record.outcome else None, "problem": record.problem})
                case Finished(outcome=outcome, record=record):
                    if self.slot is not None:
                        self.slot.release()
                    self.log.info("call_finished", outcome=outcome.value, detail=record.detail if record else None)
                    if record is not None:
                        if record.recording_name is not None:
                            await self._sides_started()
                            await services.archiver.archive(
                                record.recording_name, call_id=self.call_id, lead_id=record.lead_id,
                                line_of_business=self.campaign.line_of_business if self.campaign else None,
                                legs=self.legs)
        except AriError as error:
            # Teardown is best effort; anything else shows up as the channel's own events.
            self.log.warning("ari_action_failed", action=type(action).__name__, error=str(error))
        return None

    async def _record_sides(self, recording: str, done: asyncio.Event) -> None:
        """The two sides apart, from snoops on the agent's leg (in the bridge from the start; the
        lead joins once answered). `record_sides` logs its own failures and never raises, so the
        runtime's task group is never cancelled by it."""
        try:
            self.legs = await record_sides(self.services.ari, self.services.app, self.call_id, recording,
                                           self.ids.agent_channel, channel_is="agent",
                                           route=self.calls.route_of(self.call_id), log=self.log)
        finally:
            done.set()

    async def _sides_started(self) -> None:
        if self._sides_done is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._sides_done.wait()

    async def _check_gate(self, phone: str) -> CallInput:
        """The gate, again, at the instant before the lead is dialed; it takes a cap slot."""
        decision = await decide_at_dial(
            self.services.gate,
            contact_request(phone, self.lead, dial_mode=DialMode.MANUAL),
            policy_for_campaign(self.campaign, dial_mode=DialMode.MANUAL),
            self.log,
        )
        if decision is None:
            return inputs.GateDecided(allowed=False, reasons=("gate_unavailable",))
        return inputs.GateDecided(
            allowed=decision.allowed, decision_id=decision.decision_id,
            reasons=tuple(code.value for code in decision.codes),
            recording_disclosure=decision.recording_disclosure,
        )

    async def _dial_lead(self, dial: DialLead) -> CallInput | None:
        """Create the lead's channel in the app, wait for it in Stasis, then dial it."""
        ari = self.services.ari
        channel_id = dial.channel_id
        self.lead_in_stasis.clear()  # a retry on another trunk waits for its own new leg
        try:
            await ari.create_channel(
                channel_id, dial.endpoint, app=self.services.app, app_args=["lead", self.call_id],
                variables={"CALLERID(num)": dial.caller_id, "CONNECTEDLINE(num)": dial.caller_id},
            )
            try:
                async with asyncio.timeout(STASIS_ENTRY_TIMEOUT):
                    await self.lead_in_stasis.wait()
            except TimeoutError:
                return inputs.OriginateFailed(leg=Leg.LEAD, reason="the lead channel never entered Stasis")
            # 47 CFR 64.1200(a)(6): the machine never asks for less; this guards the request too.
            await ari.dial(channel_id, ring_timeout=max(MIN_RING_SECONDS, round(dial.timeout)))
        except AriError as error:
            return inputs.OriginateFailed(leg=Leg.LEAD, reason=str(error))
        return None


class ClickToCallRuntime(CallSlice[ClickToCallRunner]):
    """Places and runs click-to-call calls; the HTTP API's `CallService`."""

    name = "click-to-call"
    prefixes = (Prefix.CLICK_TO_CALL,)

    def __init__(self, services: CallServices, settings: ClickToCallSettings) -> None:
        super().__init__(services.ari, services.dispatcher)
        self.services = services
        self.settings = settings
        # Called with each call's final snapshot (metrics, benchmarks).
        self.finished_listeners: list[Callable[[CallRecord], None]] = []
        self.hurry_seconds = settings.timeouts.teardown + 5
        # The state history of agents who only click to call (occupancy); agents with a campaign
        # session (`has_session`, set by whoever runs the campaigns too) have theirs recorded there.
        self.presence = ClickToCallPresence(wrap_up_seconds=settings.wrap_up_seconds,
                                            idle_seconds=settings.idle_seconds)
        self.has_session: Callable[[str], bool] = lambda _agent_id: False
        self._presence_ticking = False

    # -- click-to-call agents' states -------------------------------------------------------------
    async def agent_call_state(self, record: CallRecord) -> None:
        """A call's snapshot, as its agent's state (unless a campaign session has the agent)."""
        if self.has_session(record.agent_id):
            return
        await self._record_states(self.presence.call_state(record.agent_id, record.call_id, record.state,
                                                           record.campaign_id, time.time()))
        self._tick_presence()

    def disposed(self, agent_id: str, call_id: str) -> None:
        """The agent sent the disposition of `call_id` (`WrapUps`): its wrap-up is over."""
        changes = self.presence.disposed(agent_id, call_id, time.time())
        if changes:
            with contextlib.suppress(Refused):  # shutting down: the session ends unrecorded
                self.spawn(self._record_states(changes), f"agent-state-{agent_id}")
            self._tick_presence()

    async def after_drain(self) -> None:
        """The calls are over: every click-to-call agent's session ends now (logged out)."""
        await self._record_states(self.presence.end_all(time.time()))

    async def _record_states(self, changes: list[AgentSnapshot]) -> None:
        for snapshot in changes:
            try:
                # Durable (the outbox), as a campaign session's states are.
                await self.services.records.put(RecordKind.AGENT_STATE, agent_state_record(snapshot))
            except Exception as error:
                log.warning("agent_state_not_recorded", agent_id=snapshot.agent_id, error=repr(error))

    def _tick_presence(self) -> None:
        """Ends wrap-ups and idle spells on time while any click-to-call agent has a session."""
        if self._presence_ticking or self.presence.next_due() is None:
            return
        with contextlib.suppress(Refused):
            self.spawn(self._presence_ticker(), "click-to-call-presence")
            self._presence_ticking = True

    async def _presence_ticker(self) -> None:
        try:
            while (deadline := self.presence.next_due()) is not None:
                # At most a second's sleep: a disposition or a new call may bring a deadline closer.
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.time())))
                await self._record_states(self.presence.due(time.time()))
        finally:
            self._presence_ticking = False

    def finished(self, record: CallRecord) -> None:
        """A call is over and its runner gone (its recording archived): its final snapshot."""
        for listener in self.finished_listeners:
            try:
                listener(record)
            except Exception:
                log.exception("finished_listener_failed", call_id=record.call_id)

    def route_of(self, call_id: str) -> Route | None:
        """The dispatcher's registration of a call (to route one more of its channels to it)."""
        return self.dispatcher.route(call_id)

    async def reroute(self, runner: ClickToCallRunner, step: RerouteLead) -> Rerouted | RerouteFailed:
        """The same call on the next trunk (`ClickToCallHost`), the one failover path campaign
        calls take too: the gate is asked again (no second frequency-cap slot) when its recheck
        is too old."""
        record = runner.machine.record

        async def ask_gate() -> tuple[str, float] | str:
            decision = await decide_at_dial(
                self.services.gate, contact_request(step.phone, runner.lead, dial_mode=DialMode.MANUAL),
                policy_for_campaign(runner.campaign, dial_mode=DialMode.MANUAL), runner.log, reserve_attempt=False)
            if decision is None or not decision.allowed:
                return ",".join(code.value for code in decision.codes) if decision else "gate_unavailable"
            return decision.decision_id, time.time()

        return await next_trunk(self.settings.trunk_router, step, route=self.route_of(runner.call_id),
                                decision_id=record.recheck_decision_id or record.gate_decision_id or "",
                                decided_at=runner.machine.decided_at, ask_gate=ask_gate, log=runner.log)

    def forgotten(self, runner: ClickToCallRunner) -> None:
        if runner.slot is not None:
            runner.slot.release()  # idempotent: a runner that failed still gives its slot back
        record = runner.machine.record
        if self.settings.trunk_router is not None:
            # Its channel back; a 503 or a timeout sends the next calls to the next trunk.
            self.settings.trunk_router.dial_ended(runner.call_id, record.lead_hangup_cause or 0, record.lead_sip_code,
                                                  time.time())
        self.finished(record)

    def hurry(self, runner: ClickToCallRunner) -> None:
        runner.feed(inputs.HangupRequested(by=HangupBy.SYSTEM))

    @property
    def active_calls(self) -> int:
        return len(self.runners)

    def describe(self, runner: ClickToCallRunner) -> LiveCall:
        request = runner.machine.request
        state = runner.machine.state
        return LiveCall(
            call_id=runner.call_id, kind="click_to_call", direction="outbound", state=state.value,
            connected=state is CallState.BRIDGED, agent_id=request.agent_id, agent_channel=runner.ids.agent_channel,
            bridge_id=runner.ids.bridge, lead_number=request.lead_number, campaign_id=request.campaign_id,
            started_at=runner.machine.record.requested_at,
        )

    # -- CallService -----------------------------------------------------------------------
    def call_status(self, call_id: str) -> str | None:
        runner = self.runners.get(call_id)
        if runner is None:
            return None
        if runner.slot is None and runner.machine.state is CallState.REQUESTED:
            return QUEUED
        return runner.machine.state.value

    async def hangup(self, call_id: str, by: HangupBy) -> bool:
        runner = self.runners.get(call_id)
        if runner is None or runner.machine.state in {CallState.ENDING, CallState.ENDED}:
            return False
        runner.feed(inputs.HangupRequested(by=by))
        return True

    async def place_call(self, request: DialRequest, *, call_id: str | None = None) -> PlacedCall:
        self.refuse_unless_accepting("taking new calls")
        store = self.services.store
        call_id = call_id or new_id(Prefix.CLICK_TO_CALL)
        agent = await active_agent(store, request.agent_id)
        if any(r.machine.request.agent_id == agent.agent_id for r in self.runners.values()):
            raise Refused(409, "agent_busy", f"agent {agent.agent_id!r} is already on a call", field_name="agent_id")
        campaign = None
        if request.campaign_id is not None:
            campaign = await store.get_campaign(request.campaign_id)
            if campaign is None:
                raise Refused(422, "unknown_campaign", f"no campaign {request.campaign_id!r}",
                              field_name="campaign_id")
            if not campaign.active:
                raise Refused(409, "campaign_inactive", f"campaign {request.campaign_id!r} is not active",
                              field_name="campaign_id")
        lead, phone = await self._lead_and_phone(request)
        policy = policy_for_campaign(campaign, dial_mode=DialMode.MANUAL)
        decision = await self.services.gate.decide(contact_request(phone, lead, dial_mode=DialMode.MANUAL), policy)
        if not decision.allowed:
            raise ComplianceBlocked(
                decision.decision_id,
                [BlockedReason(r.code.value, r.message, r.citation) for r in decision.reasons],
            )
        lead_id = lead.lead_id if lead is not None else await self._adhoc_lead(phone)
        trunk = self.settings.route(call_id, time.time())
        if trunk is None:
            raise Refused(503, "trunks_full", "every carrier trunk is at its channel or calls-per-second limit: "
                          "try again in a moment")
        machine = CallMachine(
            CallRequest(
                call_id=call_id,
                lead_id=lead_id,
                agent_id=agent.agent_id,
                lead_number=phone,
                lead_endpoint=f"PJSIP/{phone}@{trunk}",
                agent_endpoint=agent_endpoint(agent.sip_endpoint, agent.agent_id),
                caller_id=(campaign.caller_id if campaign and campaign.caller_id else self.settings.default_caller_id),
                campaign_id=request.campaign_id,
                gate_decision_id=decision.decision_id,
                lead_name=lead_name(lead, phone),
                trunks=self.settings.trunk_count,
            ),
            requested_at=time.time(),
            timeouts=self.settings.timeouts,
        )
        runner = ClickToCallRunner(self, self.services, machine, lead, campaign)
        ids = machine.ids
        # Registered before anything is originated, so the first event already has its owner.
        self.start_runner(runner, channel_ids=[ids.agent_channel, ids.lead_channel], bridge_ids=[ids.bridge])
        runner.slot = self.services.admission.try_admit(call_id)
        if runner.slot is None:
            # The node is full: the call waits its turn (its status says so) instead of failing.
            self.spawn(self._start_when_admitted(runner), f"admit-{call_id}")
            return PlacedCall(call_id=call_id, status=QUEUED, decision_id=decision.decision_id)
        runner.feed(inputs.Start())
        return PlacedCall(call_id=call_id, status=CallState.REQUESTED.value, decision_id=decision.decision_id)

    async def _start_when_admitted(self, runner: ClickToCallRunner) -> None:
        slot = await self.services.admission.admit(runner.owner_id)
        if runner.ended() or runner.done.is_set():
            slot.release()  # hung up while it waited
            return
        runner.slot = slot
        runner.feed(inputs.Start())

    async def _lead_and_phone(self, request: DialRequest) -> tuple[Lead | None, str]:
        store = self.services.store
        if request.lead_id is not None:
            lead = await store.get_lead(request.lead_id)
            if lead is None:
                raise Refused(422, "unknown_lead", f"no lead {request.lead_id!r}", field_name="lead_id")
            if not lead.phones:
                raise Refused(422, "lead_has_no_phone", f"lead {lead.lead_id!r} has no phone", field_name="lead_id")
            return lead, lead.phones[0]
        assert request.phone is not None
        leads = await store.find_leads_by_phone(request.phone)
        return (leads[0] if leads else None), request.phone

    async def _adhoc_lead(self, phone: str) -> str:
        """A number dialed by hand gets a lead record, so the call has a home in the CRM."""
        lead_id = new_id(Prefix.LEAD)
        await self.services.records.put(RecordKind.LEAD_UPSERT,
                                        {"lead_id": lead_id, "phones": [phone], "source": "click_to_call"})
        return lead_id

    # -- Asterisk connection ------------------------------------------------------------------
    async def reconcile(self, generation: int, snapshot: Snapshot) -> None:
        live = frozenset(channel.id for channel in snapshot.channels)
        for runner in list(self.runners.values()):
            runner.reconcile(generation, inputs.AsteriskReconciled(live_channel_ids=live))
