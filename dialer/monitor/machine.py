"""One supervisor monitoring session (listen, whisper, barge) as a pure machine. No IO.

The runtime (`dialer/monitor/runtime.py`) feeds it inputs with an explicit `now` and executes
the actions it returns, in order. The supervisor's softphone is called into the app; once it
answers it sits in the monitor's own mixing bridge (`{monitor}-bridge`):

- listen: a snoop on the agent's channel, `spy=both` (hears the agent and what the agent hears,
  i.e. the lead), in the monitor bridge with the supervisor. Nobody hears the supervisor.
- whisper: a snoop `spy=both`, `whisper=out`: the supervisor's audio is added to what the agent
  hears only; the lead and the call's recording do not get it.
- barge: the supervisor's channel joins the call's own bridge: everyone hears everyone (and the
  call's recording has the supervisor too).

A snoop's directions cannot be changed, so a new mode gets a new snoop (`{monitor}-snoop-N`);
the old one is hung up first (a supervisor switching whisper -> listen is never heard again).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dialer.monitor.actions import (
    AddToBridge,
    CreateBridge,
    DestroyBridge,
    Emit,
    Finished,
    HangUp,
    MonitorAction,
    OriginateSupervisor,
    StartSnoop,
)
from dialer.monitor.inputs import (
    AsteriskLost,
    CallEnded,
    ChangeMode,
    Entered,
    MonitorInput,
    OriginateFailed,
    SnoopGone,
    SnoopUp,
    Start,
    StepFailed,
    Stop,
    SupervisorAnswered,
    SupervisorGone,
)
from dialer.monitor.record import EndReason, MonitorMode, MonitorRecord, MonitorState
from dialer.runtime.errors import InvalidStateError

# Ring time the machine allows beyond Asterisk's own originate timeout before giving up.
BACKSTOP_SLACK = 5.0


# spy / whisper directions of the snoop for the snooping modes.
SNOOP_DIRECTIONS: dict[MonitorMode, tuple[str, str]] = {
    MonitorMode.LISTEN: ("both", "none"),
    MonitorMode.WHISPER: ("both", "out"),
}

_BUSY_CAUSES = frozenset({17, 21})  # user busy, call rejected
_NO_ANSWER_CAUSES = frozenset({16, 18, 19})  # normal clearing before answer, no response, no answer


@dataclass(frozen=True)
class MonitorRequest:
    monitor_id: str
    call_id: str
    call_kind: str  # "click_to_call" or "campaign"
    agent_id: str | None
    agent_channel: str  # the channel snooped on
    call_bridge: str  # the bridge a barging supervisor joins
    endpoint: str  # the supervisor's PJSIP endpoint name, e.g. supervisor01
    mode: MonitorMode
    requested_by: str | None = None  # API token id
    campaign_id: str | None = None
    lead_number: str = "0"  # shown on the supervisor's phone
    ring_timeout: int = 20
    setup_timeout: float = 10.0  # a mode must be wired within this many seconds
    teardown_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.ring_timeout <= 0 or self.setup_timeout <= 0 or self.teardown_timeout <= 0:
            raise ValueError("monitor timeouts must be positive")

    @property
    def supervisor_channel(self) -> str:
        return f"{self.monitor_id}-sup"

    @property
    def bridge(self) -> str:
        return f"{self.monitor_id}-bridge"

    @property
    def dial_endpoint(self) -> str:
        return f"PJSIP/{self.endpoint}"

    def snoop_id(self, sequence: int) -> str:
        return f"{self.monitor_id}-snoop-{sequence}"


@dataclass
class _Wiring:
    """Where our channels are, as far as the events told us."""

    supervisor_alive: bool = False
    supervisor_in: str | None = None  # the bridge the supervisor is in
    bridge_made: bool = False
    snoop: str | None = None  # the current mode's snoop
    snoop_in_bridge: bool = False
    live_snoops: set[str] = field(default_factory=set)  # made (or being made) and not yet gone
    sequence: int = 0


class MonitorSession:
    """The monitor's state machine: `handle(input, now)` -> actions; `next_timer()`/`handle_timer(now)`."""

    def __init__(self, request: MonitorRequest, requested_at: float) -> None:
        self.request = request
        self.state = MonitorState.DIALING
        self.mode = request.mode
        self.mode_active = False
        self.modes: list[tuple[MonitorMode, float]] = [(request.mode, requested_at)]
        self.requested_at = requested_at
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.end_reason: EndReason | None = None
        self.end_detail: str | None = None
        self.supervisor_cause: int | None = None
        self.version = 0
        self._started = False
        self._deadline: float | None = None
        self._now = requested_at
        self._wiring = _Wiring()

    # -- reading ------------------------------------------------------------------------------
    @property
    def record(self) -> MonitorRecord:
        request = self.request
        return MonitorRecord(
            monitor_id=request.monitor_id, version=self.version, call_id=request.call_id,
            call_kind=request.call_kind, agent_id=request.agent_id, campaign_id=request.campaign_id,
            endpoint=request.endpoint, requested_by=request.requested_by, state=self.state, mode=self.mode,
            mode_active=self.mode_active, modes=tuple(self.modes), requested_at=self.requested_at,
            answered_at=self.answered_at, ended_at=self.ended_at, end_reason=self.end_reason,
            end_detail=self.end_detail, supervisor_cause=self.supervisor_cause,
        )

    @property
    def live(self) -> bool:
        return self.state in (MonitorState.DIALING, MonitorState.CONNECTED)

    def next_timer(self) -> float | None:
        return None if self.state is MonitorState.ENDED else self._deadline

    # -- inputs -------------------------------------------------------------------------------
    def handle(self, event: MonitorInput, now: float) -> list[MonitorAction]:
        now = max(now, self._now)  # time never runs backwards for the session
        self._now = now
        if isinstance(event, Start):
            if self._started:
                raise InvalidStateError(f"the monitor is already started (state {self.state.value})",
                                        state=self.state, operation="start")
            self._started = True
            self._wiring.supervisor_alive = True
            self._deadline = now + self.request.ring_timeout + BACKSTOP_SLACK
            return [
                OriginateSupervisor(self.request.supervisor_channel, self.request.dial_endpoint,
                                    self.request.ring_timeout,
                                    caller_name=f"Monitor {self.request.agent_id or 'call'}",
                                    caller_number=self.request.lead_number),
                self._emit(),
            ]
        if not self._started or self.state is MonitorState.ENDED:
            return []
        if self.state is MonitorState.ENDING:
            return self._while_ending(event, now)
        match event:
            case SupervisorAnswered() if self.state is MonitorState.DIALING:
                self.state = MonitorState.CONNECTED
                self.answered_at = now
                self._wiring.bridge_made = True
                return [CreateBridge(self.request.bridge), *self._wire(now), self._emit()]
            case SupervisorGone(cause=cause, text=text):
                self._wiring.supervisor_alive = False
                self.supervisor_cause = cause
                if self.state is MonitorState.DIALING:
                    return self._end(self._unanswered(cause), now, text or None)
                return self._end(EndReason.SUPERVISOR_HUNG_UP, now)
            case OriginateFailed(reason=reason) if self.state is MonitorState.DIALING:
                self._wiring.supervisor_alive = False
                return self._end(EndReason.SUPERVISOR_UNREACHABLE, now, reason)
            case SnoopUp(snoop_id=snoop) if snoop == self._wiring.snoop and self.state is MonitorState.CONNECTED:
                moving = () if self._wiring.supervisor_in == self.request.bridge else (self.request.supervisor_channel,)
                return [AddToBridge(self.request.bridge, (snoop, *moving))]
            case SnoopUp(snoop_id=snoop) if snoop != self._wiring.snoop:
                # A snoop of an earlier mode that came up late: not wanted any more.
                return [HangUp(snoop)]
            case SnoopGone(snoop_id=snoop):
                self._wiring.live_snoops.discard(snoop)
                if snoop == self._wiring.snoop and self.state is MonitorState.CONNECTED:
                    # A snoop goes with its target: the agent's channel left.
                    return self._end(EndReason.CALL_ENDED, now, "the agent's channel is gone")
                return []
            case Entered(channel_id=channel, bridge_id=bridge):
                return self._entered(channel, bridge)
            case ChangeMode(mode=mode):
                if mode is self.mode:
                    return []
                self.mode = mode
                self.modes.append((mode, now))
                self.mode_active = False
                if self.state is MonitorState.DIALING:
                    return [self._emit()]
                return [*self._wire(now), self._emit()]
            case Stop(reason=reason):
                return self._end(reason, now)
            case CallEnded():
                return self._end(EndReason.CALL_ENDED, now)
            case StepFailed(step=step, reason=reason, channel_id=channel):
                if channel is not None:
                    self._wiring.live_snoops.discard(channel)
                return self._end(EndReason.SETUP_FAILED, now, f"{step}: {reason}")
            case AsteriskLost():
                return self._end(EndReason.ASTERISK_LOST, now)
        return []

    def handle_timer(self, now: float) -> list[MonitorAction]:
        now = max(now, self._now)
        self._now = now
        if self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        match self.state:
            case MonitorState.DIALING:
                return self._end(EndReason.SUPERVISOR_NO_ANSWER, now, "no answer within the ring time")
            case MonitorState.CONNECTED:
                return self._end(EndReason.SETUP_FAILED, now, f"mode {self.mode.value} not wired in time")
            case MonitorState.ENDING:
                return self._finish(now)
        return []

    # -- internals ----------------------------------------------------------------------------
    def _emit(self) -> Emit:
        self.version += 1
        return Emit(self.record)

    @staticmethod
    def _unanswered(cause: int) -> EndReason:
        if cause in _BUSY_CAUSES:
            return EndReason.SUPERVISOR_BUSY
        if cause in _NO_ANSWER_CAUSES:
            return EndReason.SUPERVISOR_NO_ANSWER
        return EndReason.SUPERVISOR_UNREACHABLE

    def _wire(self, now: float) -> list[MonitorAction]:
        """The steps from the present wiring to the wanted mode (supervisor answered)."""
        wiring = self._wiring
        actions: list[MonitorAction] = []
        if wiring.snoop is not None:
            # Hung up first: a supervisor leaving whisper is not heard for a moment longer.
            actions.append(HangUp(wiring.snoop))
            wiring.snoop = None
            wiring.snoop_in_bridge = False
        self._deadline = now + self.request.setup_timeout
        if self.mode is MonitorMode.BARGE:
            actions.append(AddToBridge(self.request.call_bridge, (self.request.supervisor_channel,)))
            return actions
        wiring.sequence += 1
        snoop = self.request.snoop_id(wiring.sequence)
        wiring.snoop = snoop
        wiring.live_snoops.add(snoop)
        spy, whisper = SNOOP_DIRECTIONS[self.mode]
        actions.append(StartSnoop(snoop, self.request.agent_channel, spy, whisper))
        return actions

    def _entered(self, channel: str, bridge: str) -> list[MonitorAction]:
        wiring = self._wiring
        if channel == self.request.supervisor_channel:
            wiring.supervisor_in = bridge
        elif channel == wiring.snoop and bridge == self.request.bridge:
            wiring.snoop_in_bridge = True
        else:
            return []
        if self.state is not MonitorState.CONNECTED or self.mode_active:
            return []
        if self.mode is MonitorMode.BARGE:
            wired = wiring.supervisor_in == self.request.call_bridge
        else:
            wired = wiring.snoop_in_bridge and wiring.supervisor_in == self.request.bridge
        if not wired:
            return []
        self.mode_active = True
        self._deadline = None
        return [self._emit()]

    def _end(self, reason: EndReason, now: float, detail: str | None = None) -> list[MonitorAction]:
        self.end_reason = reason
        self.end_detail = detail
        self.mode_active = False
        self.state = MonitorState.ENDING
        wiring = self._wiring
        actions: list[MonitorAction] = [HangUp(snoop) for snoop in sorted(wiring.live_snoops)]
        wiring.snoop = None
        if wiring.supervisor_alive:
            actions.append(HangUp(self.request.supervisor_channel))
        if wiring.bridge_made:
            actions.append(DestroyBridge(self.request.bridge))
            wiring.bridge_made = False
        if reason is EndReason.ASTERISK_LOST:
            # Whatever is left will be cleared by the reconnect's orphan sweep.
            wiring.supervisor_alive = False
            wiring.live_snoops.clear()
        if not wiring.supervisor_alive and not wiring.live_snoops:
            return [*actions, *self._finish(now)]
        self._deadline = now + self.request.teardown_timeout
        return [*actions, self._emit()]

    def _while_ending(self, event: MonitorInput, now: float) -> list[MonitorAction]:
        wiring = self._wiring
        match event:
            case SupervisorGone(cause=cause):
                wiring.supervisor_alive = False
                if self.supervisor_cause is None:
                    self.supervisor_cause = cause
            case SnoopGone(snoop_id=snoop):
                wiring.live_snoops.discard(snoop)
            case SnoopUp(snoop_id=snoop):
                return [HangUp(snoop)]
            case StepFailed(channel_id=channel) if channel is not None:
                wiring.live_snoops.discard(channel)
            case AsteriskLost():
                wiring.supervisor_alive = False
                wiring.live_snoops.clear()
            case _:
                return []
        if not wiring.supervisor_alive and not wiring.live_snoops:
            return self._finish(now)
        return []

    def _finish(self, now: float) -> list[MonitorAction]:
        self.state = MonitorState.ENDED
        self.ended_at = now
        self._deadline = None
        emit = self._emit()
        return [emit, Finished(emit.record)]
