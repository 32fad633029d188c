"""Supervisors' monitors on Asterisk: one `MonitorRunner` per session around the pure
`MonitorSession` (`dialer/monitor/machine.py`), like the call runners.

The runtime finds the call in the slice that runs it (click-to-call or campaign, a
`LiveCallSource`), calls the supervisor's softphone into the app with a channel id we choose
(`mon-<hex>-sup`), and wires the asked mode once it answers: a snoop on the agent's channel in
the monitor's bridge (listen, whisper) or the supervisor in the call's bridge (barge). The call
slices tell it when a call starts ending; its monitors end with it. Every snapshot of a session
goes to the CRM (`monitor_sessions`) through the outbox.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from crm_bridge.kinds import RecordKind
from dialer.ari.dispatch import Route
from dialer.ari.errors import AriError, NotFound
from dialer.ari.events import Snapshot
from dialer.ari.models import ChannelDestroyed, ChannelEnteredBridge, Event, StasisEnd, StasisStart
from dialer.monitor import actions as a
from dialer.monitor import inputs as i
from dialer.monitor.machine import MonitorRequest, MonitorSession
from dialer.monitor.record import EndReason, MonitorMode, MonitorRecord, MonitorState
from dialer.runtime import callerid
from dialer.runtime.errors import Refused
from dialer.runtime.ids import Prefix, new_id
from dialer.runtime.live import LiveCall, LiveCallSource
from dialer.runtime.reconcile import RESTARTED, reconciled_version
from dialer.runtime.runner import MachineRunner, RunnerHost
from dialer.runtime.services import CallServices
from dialer.runtime.slice import RuntimeSlice

log = structlog.get_logger(__name__)

ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


@dataclass(frozen=True)
class MonitorSettings:
    trunk_endpoint: str = "trunk"
    # Every carrier trunk's endpoint: none of them is a supervisor's phone (a monitor leg
    # originated there would go out to the carrier).
    trunk_endpoints: tuple[str, ...] = ()
    ring_timeout: int = 20
    setup_timeout: float = 10.0
    teardown_timeout: float = 5.0
    keep_ended: int = 500  # ended sessions kept in memory for GET /v1/monitors/{id}


def translate(event: Event, request: MonitorRequest) -> list[i.MonitorInput]:
    """The monitor inputs an ARI event means for this session."""
    supervisor = request.supervisor_channel
    snoop_prefix = f"{request.monitor_id}-snoop-"
    match event:
        case StasisStart(channel=channel) if channel.id == supervisor:
            return [i.SupervisorAnswered()]
        case StasisStart(channel=channel) if channel.id.startswith(snoop_prefix):
            return [i.SnoopUp(channel.id)]
        case ChannelDestroyed(channel=channel, cause=cause, cause_txt=text) if channel.id == supervisor:
            return [i.SupervisorGone(cause=cause, text=text)]
        case ChannelDestroyed(channel=channel) | StasisEnd(channel=channel) if channel.id.startswith(snoop_prefix):
            # A hung-up snoop leaves the app (StasisEnd); its ChannelDestroyed is not always delivered.
            return [i.SnoopGone(channel.id)]
        case ChannelEnteredBridge(channel=channel, bridge=bridge) if channel is not None:
            if channel.id == supervisor or channel.id.startswith(snoop_prefix):
                return [i.Entered(channel.id, bridge.id)]
    return []


class MonitorHost(RunnerHost, Protocol):
    """What a monitor runner asks of its runtime."""

    def live_call(self, call_id: str) -> LiveCall | None: ...


class MonitorRunner(MachineRunner[i.MonitorInput, a.MonitorAction]):
    """One monitor session: its machine, its ordered inbox, and the task running its actions."""

    machine: MonitorSession

    def __init__(self, host: MonitorHost, services: CallServices, session: MonitorSession) -> None:
        request = session.request
        super().__init__(request.monitor_id, session, host,
                         log.bind(monitor_id=request.monitor_id, call_id=request.call_id, endpoint=request.endpoint))
        self.monitors = host
        self.services = services
        self.request = request
        self.route: Route | None = None

    @property
    def session(self) -> MonitorSession:
        return self.machine

    @property
    def monitor_id(self) -> str:
        return self.owner_id

    def translate(self, event: Event) -> list[i.MonitorInput]:
        return translate(event, self.request)

    def ended(self) -> bool:
        return self.machine.state is MonitorState.ENDED

    async def perform(self, action: a.MonitorAction) -> i.MonitorInput | None:
        ari = self.services.ari
        app = self.services.app
        try:
            match action:
                case a.OriginateSupervisor(channel_id=channel_id, endpoint=endpoint, timeout=timeout,
                                           caller_name=name, caller_number=number):
                    try:
                        await ari.originate(channel_id, endpoint, app=app, app_args=["monitor", self.monitor_id],
                                            caller_id=callerid.caller_id(name, number), ring_timeout=timeout)
                    except AriError as error:
                        return i.OriginateFailed(reason=str(error))
                case a.CreateBridge(bridge_id=bridge_id):
                    try:
                        await ari.create_bridge(bridge_id, name=f"monitor {self.request.call_id}")
                    except AriError as error:
                        return self._failed("bridge", error)
                case a.StartSnoop(snoop_id=snoop_id, target_channel=target, spy=spy, whisper=whisper):
                    if self.route is not None:
                        self.route.add_channel(snoop_id)  # before it exists: its first event has an owner
                    try:
                        await ari.snoop(target, snoop_id, spy=spy, whisper=whisper, app=app,
                                        app_args=["monitor-snoop", self.monitor_id])
                    except AriError as error:
                        return self._failed("snoop", error, snoop_id)
                case a.AddToBridge(bridge_id=bridge_id, channel_ids=channels):
                    try:
                        await ari.add_channel(bridge_id, list(channels))
                    except AriError as error:
                        return self._failed("add_to_bridge", error)
                case a.HangUp(channel_id=channel_id):
                    with contextlib.suppress(NotFound):
                        await ari.hangup(channel_id, reason="normal")
                case a.DestroyBridge(bridge_id=bridge_id):
                    with contextlib.suppress(NotFound):
                        await ari.destroy_bridge(bridge_id)
                case a.Emit(record=record):
                    await self.services.records.put(RecordKind.MONITOR_SESSION, record.to_crm())
                    self.log.info("monitor_state", state=record.state.value, mode=record.mode.value,
                                  active=record.mode_active,
                                  reason=record.end_reason.value if record.end_reason else None)
                case a.Finished(record=record):
                    self.log.info("monitor_finished", reason=record.end_reason.value if record.end_reason else None,
                                  detail=record.end_detail)
        except AriError as error:
            # Teardown is best effort; what is left shows up as the channels' own events.
            self.log.warning("ari_action_failed", action=type(action).__name__, error=str(error))
        return None

    def _failed(self, step: str, error: AriError, channel_id: str | None = None) -> i.MonitorInput:
        if self.monitors.live_call(self.request.call_id) is None:
            return i.CallEnded()  # the call went away under us: that is why the step failed
        return i.StepFailed(step=step, reason=str(error), channel_id=channel_id)


class MonitorRuntime(RuntimeSlice[MonitorRunner]):
    """Starts, switches and ends supervisors' monitors; the HTTP API's monitor service."""

    name = "monitor"
    prefixes = (Prefix.MONITOR,)

    def __init__(self, services: CallServices, sources: Sequence[LiveCallSource], settings: MonitorSettings) -> None:
        super().__init__(services.ari, services.dispatcher)
        self.services = services
        self.sources = list(sources)
        self.settings = settings
        self._ended: OrderedDict[str, MonitorRecord] = OrderedDict()
        for source in self.sources:
            source.call_end_listeners.append(self._call_ended)

    # -- reading ------------------------------------------------------------------------------
    def live_call(self, call_id: str) -> LiveCall | None:
        for source in self.sources:
            call = source.live_call(call_id)
            if call is not None:
                return call
        return None

    def live_calls(self) -> list[LiveCall]:
        calls = [call for source in self.sources for call in source.live_calls()]
        return sorted(calls, key=lambda call: call.started_at)

    def monitors_of(self, call_id: str) -> list[MonitorRecord]:
        return [r.session.record for r in self.runners.values() if r.request.call_id == call_id]

    def get(self, monitor_id: str) -> MonitorRecord | None:
        runner = self.runners.get(monitor_id)
        if runner is not None:
            return runner.session.record
        return self._ended.get(monitor_id)

    # -- commands -----------------------------------------------------------------------------
    async def start(
        self, call_id: str, endpoint: str, mode: MonitorMode, *, requested_by: str | None = None
    ) -> MonitorRecord:
        self.refuse_unless_accepting("starting monitors")
        if not ENDPOINT_NAME.match(endpoint) or endpoint in {self.settings.trunk_endpoint,
                                                              *self.settings.trunk_endpoints}:
            raise Refused(422, "invalid_field", f"endpoint {endpoint!r} is not a softphone's PJSIP endpoint "
                          "name (e.g. supervisor01)", field_name="endpoint")
        call = self.live_call(call_id)
        if call is None:
            raise Refused(404, "call_not_found", f"no live call {call_id!r}", field_name="call_id")
        if not call.connected or call.agent_channel is None:
            raise Refused(409, "call_not_connected",
                          f"call {call_id!r} is {call.state}, not connected to an agent", field_name="call_id")
        if any(r.request.endpoint == endpoint and r.session.live for r in self.runners.values()):
            raise Refused(409, "endpoint_busy", f"endpoint {endpoint!r} is already monitoring a call",
                          field_name="endpoint")
        try:
            await self.ari.get_endpoint("PJSIP", endpoint)
        except NotFound:
            raise Refused(422, "unknown_endpoint", f"Asterisk has no PJSIP endpoint {endpoint!r}",
                          field_name="endpoint") from None
        except AriError as error:
            raise Refused(503, "asterisk_unavailable", f"Asterisk does not answer: {error}") from None
        request = MonitorRequest(
            monitor_id=new_id(Prefix.MONITOR), call_id=call.call_id, call_kind=call.kind, agent_id=call.agent_id,
            agent_channel=call.agent_channel, call_bridge=call.bridge_id, endpoint=endpoint, mode=mode,
            requested_by=requested_by, campaign_id=call.campaign_id, lead_number=call.lead_number,
            ring_timeout=self.settings.ring_timeout, setup_timeout=self.settings.setup_timeout,
            teardown_timeout=self.settings.teardown_timeout,
        )
        session = MonitorSession(request, time.time())
        # The supervisor's leg joins the call's node: snoops and bridges stay within one node.
        self.services.placement.colocate(request.monitor_id, call.bridge_id)
        runner = MonitorRunner(self, self.services, session)
        # Registered before the originate, so the first event already has its owner.
        runner.route = self.start_runner(runner, channel_ids=[request.supervisor_channel], bridge_ids=[request.bridge])
        runner.feed(i.Start())
        return session.record

    def _live_runner(self, monitor_id: str) -> MonitorRunner:
        runner = self.runners.get(monitor_id)
        if runner is None:
            if monitor_id in self._ended:
                raise Refused(409, "monitor_ended", f"monitor {monitor_id!r} has ended")
            raise Refused(404, "monitor_not_found", f"no monitor {monitor_id!r}")
        if not runner.session.live:
            raise Refused(409, "monitor_ended", f"monitor {monitor_id!r} is ending")
        return runner

    def change_mode(self, monitor_id: str, mode: MonitorMode) -> MonitorRecord:
        runner = self._live_runner(monitor_id)
        runner.feed(i.ChangeMode(mode))
        return runner.session.record

    def stop(self, monitor_id: str) -> MonitorRecord:
        runner = self._live_runner(monitor_id)
        runner.feed(i.Stop())
        return runner.session.record

    # -- events from the call slices and Asterisk ---------------------------------------------
    def _call_ended(self, call_id: str) -> None:
        for runner in list(self.runners.values()):
            if runner.request.call_id == call_id:
                runner.feed(i.CallEnded())

    def forgotten(self, runner: MonitorRunner) -> None:
        self._ended[runner.monitor_id] = runner.session.record
        while len(self._ended) > self.settings.keep_ended:
            self._ended.popitem(last=False)

    def forget_ended(self) -> None:
        """Drop the ended sessions kept in memory (`get` then reads them from the CRM)."""
        self._ended.clear()

    async def stop_new_work(self) -> None:
        """A drain ends every monitor (the supervisors' legs hung up, snoops and bridges gone)."""
        for runner in list(self.runners.values()):
            runner.feed(i.Stop(EndReason.SHUTDOWN))

    async def close_left_open(self, before: datetime) -> int:
        """Sessions a dead controller left open in the CRM (requested `before` this controller
        started; its supervisor's leg and snoops were hung up by the orphan sweep): closed with
        why, once."""
        closed = 0
        for session in await self.services.store.list_open_monitor_sessions():
            requested_at = session["requested_at"]
            if not isinstance(requested_at, datetime) or requested_at >= before:
                continue
            record = {key: session[key] for key in (
                "monitor_id", "call_id", "call_kind", "agent_id", "campaign_id", "supervisor_endpoint",
                "requested_by", "mode", "modes", "requested_at", "answered_at", "supervisor_cause")}
            record.update(version=reconciled_version(), state=MonitorState.ENDED.value, ended_at=datetime.now(UTC),
                          end_reason=EndReason.CONTROLLER_RESTARTED.value, end_detail=RESTARTED)
            await self.services.records.put(RecordKind.MONITOR_SESSION, record)
            closed += 1
        return closed

    async def reconcile(self, generation: int, snapshot: Snapshot) -> None:
        """End monitors whose supervisor leg vanished while Asterisk was out of reach."""
        live = {channel.id for channel in snapshot.channels}
        for runner in list(self.runners.values()):
            if runner.session.state is not MonitorState.DIALING and runner.request.supervisor_channel not in live:
                runner.reconcile(generation, i.SupervisorGone(cause=0, text="gone while Asterisk was out of reach"))
