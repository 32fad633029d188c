"""Supervisors' monitors on Asterisk: one `MonitorRunner` per session around the pure
`MonitorSession` (`dialer/monitor/machine.py`), like the call runners.

The service finds the call in the runtime that runs it (click-to-call controller or campaign
runtime, `LiveCallSource`), calls the supervisor's softphone into the app with a channel id we
choose (`mon-<hex>-sup`), and wires the asked mode once it answers: a snoop on the agent's
channel in the monitor's bridge (listen, whisper) or the supervisor in the call's bridge (barge).
The runtimes tell it when a call starts ending; its monitors end with it. Every snapshot of a
session goes to the CRM (`monitor_sessions`) through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from dialer.ari.client import AriClient
from dialer.ari.dispatch import Dispatcher, Route
from dialer.ari.errors import AriError, NotFound
from dialer.ari.events import Snapshot
from dialer.ari.models import ChannelDestroyed, ChannelEnteredBridge, Event, StasisEnd, StasisStart
from dialer.monitor import machine as m
from dialer.runtime.errors import CallRefused
from dialer.runtime.live import LiveCall, LiveCallSource
from dialer.runtime.runner import drive

log = structlog.get_logger(__name__)

MONITOR_PREFIX = "mon-"
OUR_OBJECT = re.compile(r"^(mon-[0-9a-f]{16})-(sup|bridge|snoop-[0-9]+)$")
ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class RecordWriter(Protocol):
    async def put(self, kind: str, record: Mapping[str, object]) -> int: ...


class MonitorRefused(CallRefused):
    """A monitor request refused; `status`/`error`/`field` become the HTTP answer."""


@dataclass(frozen=True)
class MonitorSettings:
    app: str
    trunk_endpoint: str = "trunk"
    ring_timeout: int = 20
    setup_timeout: float = 10.0
    teardown_timeout: float = 5.0
    keep_ended: int = 500  # ended sessions kept in memory for GET /v1/monitors/{id}


def translate(event: Event, request: m.MonitorRequest) -> list[m.MonitorInput]:
    """The monitor inputs an ARI event means for this session."""
    supervisor = request.supervisor_channel
    snoop_prefix = f"{request.monitor_id}-snoop-"
    match event:
        case StasisStart(channel=channel) if channel.id == supervisor:
            return [m.SupervisorAnswered()]
        case StasisStart(channel=channel) if channel.id.startswith(snoop_prefix):
            return [m.SnoopUp(channel.id)]
        case ChannelDestroyed(channel=channel, cause=cause, cause_txt=text) if channel.id == supervisor:
            return [m.SupervisorGone(cause=cause, text=text)]
        case ChannelDestroyed(channel=channel) | StasisEnd(channel=channel) if channel.id.startswith(snoop_prefix):
            # A hung-up snoop leaves the app (StasisEnd); its ChannelDestroyed is not always delivered.
            return [m.SnoopGone(channel.id)]
        case ChannelEnteredBridge(channel=channel, bridge=bridge) if channel is not None:
            if channel.id == supervisor or channel.id.startswith(snoop_prefix):
                return [m.Entered(channel.id, bridge.id)]
    return []


class MonitorRunner:
    """One monitor session: its machine, its ordered inbox, and the task running its actions."""

    def __init__(self, service: MonitorService, session: m.MonitorSession) -> None:
        self.service = service
        self.session = session
        self.request = session.request
        self.inbox: asyncio.Queue[m.MonitorInput] = asyncio.Queue()
        self.done = asyncio.Event()
        self.route: Route | None = None
        self.log = log.bind(monitor_id=self.monitor_id, call_id=self.request.call_id,
                            endpoint=self.request.endpoint)

    @property
    def monitor_id(self) -> str:
        return self.request.monitor_id

    async def handle_event(self, event: Event, generation: int) -> None:
        del generation
        for item in translate(event, self.request):
            self.inbox.put_nowait(item)

    def feed(self, item: m.MonitorInput) -> None:
        self.inbox.put_nowait(item)

    async def run(self) -> None:
        try:
            await drive(self.session, self.inbox, self._execute, lambda: self.session.state is m.MonitorState.ENDED)
        except Exception:
            self.log.exception("monitor_runner_failed")
        finally:
            self.done.set()
            self.service._forget(self)

    async def _execute(self, actions: list[m.MonitorAction]) -> None:
        pending = list(actions)
        while pending:
            follow_up = await self._do(pending.pop(0))
            if follow_up is not None:
                pending.extend(self.session.handle(follow_up, time.time()))

    async def _do(self, action: m.MonitorAction) -> m.MonitorInput | None:
        ari = self.service.ari
        app = self.service.settings.app
        try:
            match action:
                case m.OriginateSupervisor(channel_id=channel_id, endpoint=endpoint, timeout=timeout):
                    live = self.service.live_call(self.request.call_id)
                    shown = live.lead_number if live is not None else "0"
                    try:
                        await ari.originate(
                            channel_id, endpoint, app=app, app_args=["monitor", self.monitor_id],
                            caller_id=f'"Monitor {self.request.agent_id or "call"}" <{shown}>', ring_timeout=timeout,
                        )
                    except AriError as error:
                        return m.OriginateFailed(reason=str(error))
                case m.CreateBridge(bridge_id=bridge_id):
                    try:
                        await ari.create_bridge(bridge_id, name=f"monitor {self.request.call_id}")
                    except AriError as error:
                        return self._failed("bridge", error)
                case m.StartSnoop(snoop_id=snoop_id, target_channel=target, spy=spy, whisper=whisper):
                    if self.route is not None:
                        self.route.add_channel(snoop_id)  # before it exists: its first event has an owner
                    try:
                        await ari.snoop(target, snoop_id, spy=spy, whisper=whisper, app=app,
                                        app_args=["monitor-snoop", self.monitor_id])
                    except AriError as error:
                        return self._failed("snoop", error, snoop_id)
                case m.AddToBridge(bridge_id=bridge_id, channel_ids=channels):
                    try:
                        await ari.add_channel(bridge_id, list(channels))
                    except AriError as error:
                        return self._failed("add_to_bridge", error)
                case m.HangUp(channel_id=channel_id):
                    with contextlib.suppress(NotFound):
                        await ari.hangup(channel_id, reason="normal")
                case m.DestroyBridge(bridge_id=bridge_id):
                    with contextlib.suppress(NotFound):
                        await ari.destroy_bridge(bridge_id)
                case m.Emit(record=record):
                    await self.service.records.put("monitor_session", record.to_crm())
                    self.log.info("monitor_state", state=record.state.value, mode=record.mode.value,
                                  active=record.mode_active,
                                  reason=record.end_reason.value if record.end_reason else None)
                case m.Finished(record=record):
                    self.log.info("monitor_finished", reason=record.end_reason.value if record.end_reason else None,
                                  detail=record.end_detail)
        except AriError as error:
            # Teardown is best effort; what is left shows up as the channels' own events.
            self.log.warning("ari_action_failed", action=type(action).__name__, error=str(error))
        return None

    def _failed(self, step: str, error: AriError, channel_id: str | None = None) -> m.MonitorInput:
        if self.service.live_call(self.request.call_id) is None:
            return m.CallEnded()  # the call went away under us: that is why the step failed
        return m.StepFailed(step=step, reason=str(error), channel_id=channel_id)


class MonitorService:
    """Starts, switches and ends supervisors' monitors; the HTTP API's monitor service."""

    def __init__(
        self,
        ari: AriClient,
        dispatcher: Dispatcher,
        records: RecordWriter,
        sources: Sequence[LiveCallSource],
        settings: MonitorSettings,
    ) -> None:
        self.ari = ari
        self.dispatcher = dispatcher
        self.records = records
        self.sources = list(sources)
        self.settings = settings
        self.runners: dict[str, MonitorRunner] = {}
        self._ended: OrderedDict[str, m.MonitorRecord] = OrderedDict()
        self._tasks: asyncio.TaskGroup | None = None
        self._accepting = False
        for source in self.sources:
            source.call_end_listeners.append(self._call_ended)

    # -- lifecycle ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[MonitorService]:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            self._accepting = True
            try:
                yield self
            finally:
                self._accepting = False
                self._tasks = None

    async def drain(self, deadline_seconds: float) -> None:
        """End every monitor (the supervisors' legs hung up, snoops and bridges gone)."""
        self._accepting = False
        for runner in list(self.runners.values()):
            runner.feed(m.Stop(m.EndReason.SHUTDOWN))
        waiting = [runner.done.wait() for runner in self.runners.values()]
        if waiting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline_seconds):
                    await asyncio.gather(*waiting)

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

    def monitors_of(self, call_id: str) -> list[m.MonitorRecord]:
        return [r.session.record for r in self.runners.values() if r.request.call_id == call_id]

    def get(self, monitor_id: str) -> m.MonitorRecord | None:
        runner = self.runners.get(monitor_id)
        if runner is not None:
            return runner.session.record
        return self._ended.get(monitor_id)

    # -- commands -----------------------------------------------------------------------------
    async def start(
        self, call_id: str, endpoint: str, mode: m.MonitorMode, *, requested_by: str | None = None
    ) -> m.MonitorRecord:
        if not self._accepting or self._tasks is None:
            raise MonitorRefused(503, "shutting_down", "the dialer is not starting monitors")
        if not ENDPOINT_NAME.match(endpoint) or endpoint == self.settings.trunk_endpoint:
            raise MonitorRefused(422, "invalid_field", f"endpoint {endpoint!r} is not a softphone's PJSIP endpoint "
                                 "name (e.g. supervisor01)", field_name="endpoint")
        call = self.live_call(call_id)
        if call is None:
            raise MonitorRefused(404, "call_not_found", f"no live call {call_id!r}", field_name="call_id")
        if not call.connected or call.agent_channel is None:
            raise MonitorRefused(409, "call_not_connected",
                                 f"call {call_id!r} is {call.state}, not connected to an agent", field_name="call_id")
        if any(r.request.endpoint == endpoint and r.session.live for r in self.runners.values()):
            raise MonitorRefused(409, "endpoint_busy", f"endpoint {endpoint!r} is already monitoring a call",
                                 field_name="endpoint")
        try:
            await self.ari.get_endpoint("PJSIP", endpoint)
        except NotFound:
            raise MonitorRefused(422, "unknown_endpoint", f"Asterisk has no PJSIP endpoint {endpoint!r}",
                                 field_name="endpoint") from None
        except AriError as error:
            raise MonitorRefused(503, "asterisk_unavailable", f"Asterisk does not answer: {error}") from None
        monitor_id = f"{MONITOR_PREFIX}{uuid.uuid4().hex[:16]}"
        request = m.MonitorRequest(
            monitor_id=monitor_id, call_id=call.call_id, call_kind=call.kind, agent_id=call.agent_id,
            agent_channel=call.agent_channel, call_bridge=call.bridge_id, endpoint=endpoint, mode=mode,
            requested_by=requested_by, campaign_id=call.campaign_id, ring_timeout=self.settings.ring_timeout,
            setup_timeout=self.settings.setup_timeout, teardown_timeout=self.settings.teardown_timeout,
        )
        session = m.MonitorSession(request, time.time())
        runner = MonitorRunner(self, session)
        # Registered before the originate, so the first event already has its owner.
        runner.route = self.dispatcher.register(monitor_id, runner, channel_ids=[request.supervisor_channel],
                                                bridge_ids=[request.bridge])
        self.runners[monitor_id] = runner
        self._tasks.create_task(runner.run(), name=f"monitor-{monitor_id}")
        runner.feed(m.Start())
        return session.record

    def _live_runner(self, monitor_id: str) -> MonitorRunner:
        runner = self.runners.get(monitor_id)
        if runner is None:
            if monitor_id in self._ended:
                raise MonitorRefused(409, "monitor_ended", f"monitor {monitor_id!r} has ended")
            raise MonitorRefused(404, "monitor_not_found", f"no monitor {monitor_id!r}")
        if not runner.session.live:
            raise MonitorRefused(409, "monitor_ended", f"monitor {monitor_id!r} is ending")
        return runner

    def change_mode(self, monitor_id: str, mode: m.MonitorMode) -> m.MonitorRecord:
        runner = self._live_runner(monitor_id)
        runner.feed(m.ChangeMode(mode))
        return runner.session.record

    def stop(self, monitor_id: str) -> m.MonitorRecord:
        runner = self._live_runner(monitor_id)
        runner.feed(m.Stop())
        return runner.session.record

    # -- events from the call runtimes and Asterisk ---------------------------------------------
    def _call_ended(self, call_id: str) -> None:
        for runner in list(self.runners.values()):
            if runner.request.call_id == call_id:
                runner.feed(m.CallEnded())

    def _forget(self, runner: MonitorRunner) -> None:
        self.runners.pop(runner.monitor_id, None)
        self._ended[runner.monitor_id] = runner.session.record
        while len(self._ended) > self.settings.keep_ended:
            self._ended.popitem(last=False)
        self.dispatcher.unregister(runner.monitor_id)

    async def on_connected(self, generation: int, snapshot: Snapshot) -> None:
        """After every (re)connect: end monitors whose supervisor leg vanished, clear orphans."""
        live = {channel.id for channel in snapshot.channels}
        for runner in list(self.runners.values()):
            if runner.session.state is not m.MonitorState.DIALING and runner.request.supervisor_channel not in live:
                runner.feed(m.SupervisorGone(cause=0, text="gone while Asterisk was out of reach"))
        orphans = [c.id for c in snapshot.channels
                   if (match := OUR_OBJECT.match(c.id)) and match.group(1) not in self.runners]
        bridges = [b.id for b in snapshot.bridges
                   if (match := OUR_OBJECT.match(b.id)) and match.group(1) not in self.runners]
        for channel_id in orphans:
            with contextlib.suppress(AriError):
                await self.ari.hangup(channel_id, reason="normal")
        for bridge_id in bridges:
            with contextlib.suppress(AriError):
                await self.ari.destroy_bridge(bridge_id)
        if orphans or bridges:
            log.warning("monitor_orphans_cleared", generation=generation, channels=orphans, bridges=bridges)

    async def on_unrouted(self, event: Event, generation: int) -> None:
        del generation
        if isinstance(event, StasisStart) and (match := OUR_OBJECT.match(event.channel.id)):
            if match.group(1) not in self.runners:
                # A leg of a monitor this controller does not run (it died mid-session): hang it up.
                with contextlib.suppress(AriError):
                    await self.ari.hangup(event.channel.id, reason="normal")
