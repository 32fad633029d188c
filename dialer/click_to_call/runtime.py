"""The controller: runs click-to-call calls on Asterisk.

One `CallRunner` per call owns its `CallMachine` (pure), an ordered inbox, and one task. ARI
events (through the dispatcher), API commands and the results of the actions it runs all go
through that inbox, so the machine sees one ordered stream; calls run in parallel.

Before a call is requested the gate decides (blocked: nothing is created, the decision is
audited). When the agent answers, the call's bridge is made and recorded, then the gate is
asked again at that instant (reserving a frequency-cap slot), and only then is the lead dialed.
Every snapshot of the call goes to the CRM through the outbox and to the agent's WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import structlog

from compliance_rules.gate import ComplianceGate
from compliance_rules.model import DialMode
from crm_bridge.store import Campaign, CrmStore, Lead
from dialer.ari.client import AriClient
from dialer.ari.dispatch import Dispatcher
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
from dialer.ari.sounds import DialplanSounds
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
    ScreenPop,
    StartRecording,
    StopRecording,
)
from dialer.click_to_call.inputs import CallInput, HangupBy, Leg
from dialer.click_to_call.machine import CallMachine, CallRequest, CallTimeouts
from dialer.click_to_call.record import CallRecord, CallState
from dialer.runtime.agent_events import AgentEventHub
from dialer.runtime.errors import (
    BlockedReason,
    CallRefused,
    ComplianceBlocked,
    DialRequest,
    PlacedCall,
)
from dialer.runtime.gate import contact_request, policy_for_campaign
from dialer.runtime.live import LiveCall
from dialer.runtime.runner import drive
from dialer.runtime.snapshots import SnapshotWriter
from recordings.archive import archive_recording
from recordings.crypto import Keyring

log = structlog.get_logger(__name__)

# Our channels and bridges are named after the call (CallIds), so after a restart we can tell
# ours from anyone else's in GET /channels and GET /bridges.
OUR_OBJECT = re.compile(r"^(call-[0-9a-f]{32})-(agent|lead|bridge)$")
# A reconciliation snapshot must outrank every snapshot the dead controller may still have in
# its outbox, whose versions are small counters.
RECONCILED_VERSION_BASE = 10**12
STASIS_ENTRY_TIMEOUT = 5.0
GATE_RECHECK_ATTEMPTS = 2


class RecordWriter(Protocol):
    async def put(self, kind: str, record: Mapping[str, object]) -> int: ...

    async def put_many(self, items: Sequence[tuple[str, Mapping[str, object]]]) -> list[int]: ...


@dataclass(frozen=True)
class ControllerConfig:
    app: str
    recordings_dir: Path
    trunk_endpoint: str = "trunk"
    default_caller_id: str = "+18885550100"
    timeouts: CallTimeouts = field(default_factory=CallTimeouts)
    keyring: Keyring | None = None
    """Seals archived recordings; None stores them in the clear (tests of the archive only)."""

    def lead_endpoint(self, phone: str) -> str:
        return f"PJSIP/{phone}@{self.trunk_endpoint}"


def agent_endpoint(sip_endpoint: str | None, agent_id: str) -> str:
    endpoint = sip_endpoint or agent_id
    return endpoint if "/" in endpoint else f"PJSIP/{endpoint}"


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
            sip_code = tech_cause if tech_cause and 100 <= tech_cause <= 699 else None
            if channel.id == ids.agent_channel:
                return [inputs.AgentHungUp(cause=cause, sip_code=sip_code, cause_text=text)]
            if channel.id == ids.lead_channel:
                return [inputs.LeadHungUp(cause=cause, sip_code=sip_code, cause_text=text)]
        case ChannelEnteredBridge(channel=channel, bridge=bridge):
            if channel is not None and channel.id == ids.lead_channel and bridge.id == ids.bridge:
                return [inputs.LeadJoined()]
        case RecordingStarted(recording=recording) if recording.name == ids.recording:
            return [inputs.RecordingStarted(name=recording.name)]
        case RecordingFailed(recording=recording) if recording.name == ids.recording:
            return [inputs.RecordingFailed(reason=recording.cause or "recording failed")]
    return []


class CallRunner:
    """One call: its machine, its ordered inbox, and the task that executes its actions."""

    def __init__(
        self, controller: Controller, machine: CallMachine, lead: Lead | None, lead_name: str, campaign: Campaign | None
    ) -> None:
        self.controller = controller
        self.machine = machine
        self.lead = lead
        # Kept from the request: the recheck must not depend on PostgreSQL answering mid-call.
        self.campaign = campaign
        self.lead_name = lead_name
        self.ids = machine.ids
        self.inbox: asyncio.Queue[CallInput] = asyncio.Queue()
        self.done = asyncio.Event()
        # Set by the dispatcher's task: a created channel must be in Stasis before it is dialed.
        self.lead_in_stasis = asyncio.Event()
        self.log = log.bind(
            call_id=machine.request.call_id,
            lead_id=machine.request.lead_id,
            agent_id=machine.request.agent_id,
            campaign_id=machine.request.campaign_id,
        )

    @property
    def call_id(self) -> str:
        return self.machine.request.call_id

    # EventConsumer: called by the dispatcher's per-call task, in order.
    async def handle_event(self, event: Event, generation: int) -> None:
        del generation
        if isinstance(event, StasisStart) and event.channel.id == self.ids.lead_channel:
            self.lead_in_stasis.set()
        for item in translate(event, self.ids):
            self.inbox.put_nowait(item)

    def feed(self, item: CallInput) -> None:
        self.inbox.put_nowait(item)

    async def run(self) -> None:
        try:
            await self._run()
        except Exception:
            self.log.exception("call_runner_failed")
        finally:
            self.done.set()
            self.controller._forget(self)

    async def _run(self) -> None:
        await drive(self.machine, self.inbox, self._execute, lambda: self.machine.state is CallState.ENDED)
        await self._collect_recording()

    async def _execute(self, actions: list[CallAction]) -> None:
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            follow_up = await self._do(action)
            if follow_up is not None:
                pending.extend(self.machine.handle(follow_up, time.time()))

    async def _do(self, action: CallAction) -> CallInput | None:
        ari = self.controller.ari
        request = self.machine.request
        try:
            match action:
                case OriginateAgent(channel_id=channel_id, endpoint=endpoint, timeout=timeout):
                    await ari.originate(
                        channel_id,
                        endpoint,
                        app=self.controller.config.app,
                        app_args=["agent", self.call_id],
                        caller_id=f'"{self.lead_name}" <{request.lead_number}>',
                        ring_timeout=max(1, round(timeout)),
                    )
                case ScreenPop():
                    self.controller.agent_events.publish(request.agent_id, self._screen_pop())
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
                case CheckGate():
                    return await self.controller._recheck(self)
                case DialLead(channel_id=channel_id, endpoint=endpoint, caller_id=caller_id, timeout=timeout):
                    try:
                        await ari.create_channel(
                            channel_id,
                            endpoint,
                            app=self.controller.config.app,
                            app_args=["lead", self.call_id],
                            variables={"CALLERID(num)": caller_id, "CONNECTEDLINE(num)": caller_id},
                        )
                        try:
                            async with asyncio.timeout(STASIS_ENTRY_TIMEOUT):
                                await self.lead_in_stasis.wait()
                        except TimeoutError:
                            return inputs.OriginateFailed(leg=Leg.LEAD, reason="the lead channel never entered Stasis")
                        # 47 CFR 64.1200(a)(6): ring at least 15 s; the machine never asks for less.
                        await ari.dial(channel_id, ring_timeout=max(15, round(timeout)))
                    except AriError as error:
                        return inputs.OriginateFailed(leg=Leg.LEAD, reason=str(error))
                case HangupChannel(channel_id=channel_id, reason=reason):
                    with contextlib.suppress(NotFound):
                        await ari.hangup(channel_id, reason=reason)
                case PlayRecordingNotice(bridge_id=bridge_id, playback_id=playback_id):
                    await ari.play_bridge(bridge_id, await self.controller.sounds.media("recording-notice"),
                                          playback_id=playback_id)
                case StopRecording(name=name):
                    with contextlib.suppress(NotFound):
                        await ari.stop_recording(name)
                case DestroyBridge(bridge_id=bridge_id):
                    with contextlib.suppress(NotFound):
                        await ari.destroy_bridge(bridge_id)
                case Emit(record=record):
                    if record.state in (CallState.ENDING, CallState.ENDED):
                        self.controller._call_ending(self.call_id)
                    await self.controller.log_snapshot(record.to_crm_call())
                    self.controller.agent_events.publish(
                        request.agent_id,
                        {"type": "call_state", "call_id": self.call_id, "state": record.state.value,
                         "outcome": record.outcome.value if record.outcome else None},
                    )
                case Finished(outcome=outcome):
                    self.log.info("call_finished", outcome=outcome.value, detail=self.machine.record.detail)
        except AriError as error:
            if isinstance(action, OriginateAgent):
                return inputs.OriginateFailed(leg=Leg.AGENT, reason=str(error))
            # Teardown is best effort; anything else shows up as the channel's own events.
            self.log.warning("ari_action_failed", action=type(action).__name__, error=str(error))
        return None

    def _screen_pop(self) -> dict[str, object]:
        request = self.machine.request
        lead = self.lead
        return {
            "type": "screen_pop",
            "call_id": self.call_id,
            "campaign_id": request.campaign_id,
            "lead": {
                "lead_id": request.lead_id,
                "name": self.lead_name,
                "phone": request.lead_number,
                "state": lead.state if lead else None,
                "zip": lead.zip if lead else None,
                "pipeline_stage": lead.pipeline_stage.value if lead else None,
                "email": lead.email if lead else None,
            },
        }

    async def _collect_recording(self) -> None:
        name = self.machine.record.recording_name
        if name is None:
            return
        try:
            archived = await archive_recording(
                self.controller.ari, name, self.controller.config.recordings_dir, keyring=self.controller.config.keyring
            )
        except Exception as error:
            # The file stays in Asterisk's spool; the call row still names it.
            self.log.error("recording_not_archived", recording=name, error=repr(error))
            return
        await self.controller.records.put(
            "recording", archived.to_record(call_id=self.call_id, lead_id=self.machine.request.lead_id)
        )


class Controller:
    """Places and runs calls; the HTTP API's `CallService`."""

    def __init__(
        self,
        ari: AriClient,
        dispatcher: Dispatcher,
        gate: ComplianceGate,
        store: CrmStore,
        records: RecordWriter,
        agent_events: AgentEventHub,
        config: ControllerConfig,
    ) -> None:
        self.ari = ari
        self.dispatcher = dispatcher
        self.gate = gate
        self.store = store
        self.records = records
        self.agent_events = agent_events
        self.config = config
        self._calls: dict[str, CallRunner] = {}
        # Writes call snapshots behind the call flow (set by the service); None: write inline.
        self.snapshots: SnapshotWriter | None = None
        # Called with each call's final snapshot (metrics, benchmarks).
        self.finished_listeners: list[Callable[[CallRecord], None]] = []
        # Called once with the call id when a call starts ending (supervisors' monitors end with it).
        self.call_end_listeners: list[Callable[[str], None]] = []
        self._ending: set[str] = set()
        self._tasks: asyncio.TaskGroup | None = None
        self._accepting = True
        self.sounds = DialplanSounds(ari)

    # -- lifecycle -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Controller]:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            try:
                yield self
            finally:
                self._accepting = False
                self._tasks = None

    async def drain(self, deadline_seconds: float) -> None:
        """Stop taking calls; let live calls finish, then hang up what is left."""
        self._accepting = False
        waiting = [runner.done.wait() for runner in self._calls.values()]
        if waiting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline_seconds):
                    await asyncio.gather(*waiting)
        for runner in list(self._calls.values()):
            runner.feed(inputs.HangupRequested(by=HangupBy.SYSTEM))
        waiting = [runner.done.wait() for runner in self._calls.values()]
        if waiting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.timeouts.teardown + 5):
                    await asyncio.gather(*waiting)

    def _call_ending(self, call_id: str) -> None:
        if call_id in self._ending:
            return
        self._ending.add(call_id)
        for listener in self.call_end_listeners:
            try:
                listener(call_id)
            except Exception:
                log.exception("call_end_listener_failed", call_id=call_id)

    def _forget(self, runner: CallRunner) -> None:
        self._call_ending(runner.call_id)
        self._ending.discard(runner.call_id)
        self._calls.pop(runner.call_id, None)
        for listener in self.finished_listeners:
            try:
                listener(runner.machine.record)
            except Exception:
                log.exception("finished_listener_failed", call_id=runner.call_id)
        self.dispatcher.unregister(runner.call_id)

    async def log_snapshot(self, snapshot: Mapping[str, object]) -> None:
        """A call's CRM row: behind the call flow when a snapshot writer runs, else durably now."""
        if self.snapshots is not None:
            self.snapshots.submit("call", snapshot)
        else:
            await self.records.put("call", snapshot)

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def live_calls(self) -> list[LiveCall]:
        """The calls in progress, as a supervisor's wallboard shows them."""
        return [self._live(runner) for runner in list(self._calls.values())]

    def live_call(self, call_id: str) -> LiveCall | None:
        runner = self._calls.get(call_id)
        return None if runner is None else self._live(runner)

    @staticmethod
    def _live(runner: CallRunner) -> LiveCall:
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
        runner = self._calls.get(call_id)
        return None if runner is None else runner.machine.state.value

    async def hangup(self, call_id: str, by: HangupBy) -> bool:
        runner = self._calls.get(call_id)
        if runner is None or runner.machine.state in {CallState.ENDING, CallState.ENDED}:
            return False
        runner.feed(inputs.HangupRequested(by=by))
        return True

    async def place_call(self, request: DialRequest, *, call_id: str | None = None) -> PlacedCall:
        if not self._accepting or self._tasks is None:
            raise CallRefused(503, "shutting_down", "the dialer is not taking new calls")
        call_id = call_id or f"call-{uuid.uuid4().hex}"
        agent = await self.store.get_agent(request.agent_id)
        if agent is None:
            raise CallRefused(422, "unknown_agent", f"no agent {request.agent_id!r}", field_name="agent_id")
        if not agent.active:
            raise CallRefused(409, "agent_inactive", f"agent {request.agent_id!r} is not active", field_name="agent_id")
        if any(r.machine.request.agent_id == agent.agent_id for r in self._calls.values()):
            raise CallRefused(409, "agent_busy", f"agent {agent.agent_id!r} is already on a call", field_name="agent_id")
        campaign = None
        if request.campaign_id is not None:
            campaign = await self.store.get_campaign(request.campaign_id)
            if campaign is None:
                raise CallRefused(
                    422, "unknown_campaign", f"no campaign {request.campaign_id!r}", field_name="campaign_id"
                )
            if not campaign.active:
                raise CallRefused(
                    409, "campaign_inactive", f"campaign {request.campaign_id!r} is not active", field_name="campaign_id"
                )
        lead, phone = await self._lead_and_phone(request)
        policy = policy_for_campaign(campaign, dial_mode=DialMode.MANUAL)
        decision = await self.gate.decide(contact_request(phone, lead, dial_mode=DialMode.MANUAL), policy)
        if not decision.allowed:
            raise ComplianceBlocked(
                decision.decision_id,
                [BlockedReason(r.code.value, r.message, r.citation) for r in decision.reasons],
            )
        lead_id = lead.lead_id if lead is not None else await self._adhoc_lead(phone)
        machine = CallMachine(
            CallRequest(
                call_id=call_id,
                lead_id=lead_id,
                agent_id=agent.agent_id,
                lead_number=phone,
                lead_endpoint=self.config.lead_endpoint(phone),
                agent_endpoint=agent_endpoint(agent.sip_endpoint, agent.agent_id),
                caller_id=(campaign.caller_id if campaign and campaign.caller_id else self.config.default_caller_id),
                campaign_id=request.campaign_id,
                gate_decision_id=decision.decision_id,
            ),
            requested_at=time.time(),
            timeouts=self.config.timeouts,
        )
        lead_name = " ".join(p for p in ((lead.first_name, lead.last_name) if lead else ()) if p) or phone
        runner = CallRunner(self, machine, lead, lead_name, campaign)
        ids = machine.ids
        # Registered before anything is originated, so the first event already has its owner.
        self.dispatcher.register(call_id, runner, channel_ids=[ids.agent_channel, ids.lead_channel], bridge_ids=[ids.bridge])
        self._calls[call_id] = runner
        self._tasks.create_task(runner.run(), name=f"call-{call_id}")
        runner.feed(inputs.Start())
        return PlacedCall(call_id=call_id, status=CallState.REQUESTED.value, decision_id=decision.decision_id)

    async def _lead_and_phone(self, request: DialRequest) -> tuple[Lead | None, str]:
        if request.lead_id is not None:
            lead = await self.store.get_lead(request.lead_id)
            if lead is None:
                raise CallRefused(422, "unknown_lead", f"no lead {request.lead_id!r}", field_name="lead_id")
            if not lead.phones:
                raise CallRefused(422, "lead_has_no_phone", f"lead {lead.lead_id!r} has no phone", field_name="lead_id")
            return lead, lead.phones[0]
        assert request.phone is not None
        leads = await self.store.find_leads_by_phone(request.phone)
        return (leads[0] if leads else None), request.phone

    async def _adhoc_lead(self, phone: str) -> str:
        """A number dialed by hand gets a lead record, so the call has a home in the CRM."""
        lead_id = f"lead-{uuid.uuid4().hex}"
        await self.records.put("lead_upsert", {"lead_id": lead_id, "phones": [phone], "source": "click_to_call"})
        return lead_id

    async def _recheck(self, runner: CallRunner) -> CallInput:
        """The gate, again, at the instant before the lead is dialed; it takes a cap slot."""
        request = runner.machine.request
        try:
            for attempt in range(GATE_RECHECK_ATTEMPTS):
                decision = await self.gate.decide(
                    contact_request(request.lead_number, runner.lead, dial_mode=DialMode.MANUAL),
                    policy_for_campaign(runner.campaign, dial_mode=DialMode.MANUAL),
                    reserve_attempt=True,
                )
                # A gate that could not decide (Redis slow under load) blocks; asking once more
                # within the machine's decision budget is still fail-closed if it fails again.
                if decision.allowed or {r.code.value for r in decision.reasons} != {"gate_unavailable"}:
                    break
                runner.log.warning("gate_recheck_undecided", attempt=attempt + 1)
        except Exception as error:  # fail closed
            runner.log.error("gate_recheck_failed", error=repr(error))
            return inputs.GateDecided(allowed=False, reasons=("gate_unavailable",))
        return inputs.GateDecided(
            allowed=decision.allowed,
            decision_id=decision.decision_id,
            reasons=tuple(code.value for code in decision.codes),
            recording_disclosure=decision.recording_disclosure,
        )

    # -- Asterisk connection ------------------------------------------------------------------
    async def on_connected(self, generation: int, snapshot: Snapshot) -> None:
        """After every (re)connect: reconcile tracked calls, clear objects no call owns."""
        live = frozenset(channel.id for channel in snapshot.channels)
        for runner in list(self._calls.values()):
            runner.feed(inputs.AsteriskReconciled(live_channel_ids=live))
        orphans = [
            channel.id for channel in snapshot.channels
            if (match := OUR_OBJECT.match(channel.id)) and match.group(1) not in self._calls
        ]
        bridges = [
            bridge.id for bridge in snapshot.bridges
            if (match := OUR_OBJECT.match(bridge.id)) and match.group(1) not in self._calls
        ]
        for channel_id in orphans:
            with contextlib.suppress(AriError):
                await self.ari.hangup(channel_id, reason="normal")
        for bridge_id in bridges:
            with contextlib.suppress(AriError):
                await self.ari.destroy_bridge(bridge_id)
        if orphans or bridges:
            log.warning("orphans_cleared", generation=generation, channels=orphans, bridges=bridges)

    async def close_abandoned_rows(self) -> int:
        """Calls a dead controller left open in the CRM are closed with an outcome (once)."""
        now = datetime.now(UTC)
        closed = 0
        for call in await self.store.list_open_calls():
            if call.call_id in self._calls:
                continue
            record = {
                "call_id": call.call_id,
                "version": RECONCILED_VERSION_BASE + int(time.time() * 1000),
                "direction": call.direction.value,
                "lead_id": call.lead_id,
                "agent_id": call.agent_id,
                "campaign_id": call.campaign_id,
                "lead_number": call.lead_number,
                "agent_endpoint": call.agent_endpoint,
                "caller_id": call.caller_id,
                "requested_at": call.requested_at,
                "agent_answered_at": call.agent_answered_at,
                "lead_ringing_at": call.lead_ringing_at,
                "lead_answered_at": call.lead_answered_at,
                "bridged_at": call.bridged_at,
                "ended_at": now,
                "outcome": "answered" if call.bridged_at else "failed",
                "hangup_cause_text": "controller restarted during the call",
                "total_seconds": (now - call.requested_at).total_seconds(),
                "talk_seconds": (now - call.bridged_at).total_seconds() if call.bridged_at else None,
                "recording_id": call.recording_id,
                "compliance_decision_id": call.compliance_decision_id,
            }
            await self.records.put("call", record)
            closed += 1
        return closed

    async def on_unrouted(self, event: Event, generation: int) -> None:
        if isinstance(event, StasisStart) and (match := OUR_OBJECT.match(event.channel.id)):
            if match.group(1) not in self._calls:
                # A leg of a call this controller does not run (it died mid-call): hang it up.
                with contextlib.suppress(AriError):
                    await self.ari.hangup(event.channel.id, reason="normal")
        log.debug("unrouted_event", type=event.type, generation=generation)
