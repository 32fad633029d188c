"""An agent's session on a nailed-up leg (docs/decisions.md, decision 4), as a pure state machine.

The agent's softphone is called once at login and stays connected in the agent's own holding
bridge until logout; answered leads join the agent with one bridge operation. The runtime
feeds the machine what happened (with an explicit `now`, epoch seconds) and acts on the
returned snapshot (Redis, the agent's WebSocket). Nothing here does IO.

    logging_in --leg_up--> ready --reserve--> reserved --connected--> on_call
    on_call --call_ended--> wrap_up --(disposition | ready | timeout)--> ready (or paused)
    ready --pause--> paused --ready--> ready;  any --leg_lost / logout--> logged_out
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from dialer.runtime.errors import InvalidStateError


class AgentState(StrEnum):
    """Persisted in Redis and pushed on the agent's WebSocket."""

    LOGGING_IN = "logging_in"
    READY = "ready"
    RESERVED = "reserved"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    LOGGED_OUT = "logged_out"


@dataclass(frozen=True)
class AgentSnapshot:
    """One agent's state at an instant; `version` grows with every change."""

    agent_id: str
    state: AgentState
    since: float
    version: int
    campaign_ids: tuple[str, ...]
    channel_id: str
    call_id: str | None = None
    pause_reason: str | None = None
    wrap_up_until: float | None = None
    logout_reason: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "type": "agent_state",
            "agent_id": self.agent_id,
            "state": self.state.value,
            "since": self.since,
            "version": self.version,
            "campaign_ids": list(self.campaign_ids),
            "channel_id": self.channel_id,
            "call_id": self.call_id,
            "pause_reason": self.pause_reason,
            "wrap_up_until": self.wrap_up_until,
            "logout_reason": self.logout_reason,
        }


def agent_state_record(snapshot: AgentSnapshot) -> dict[str, object]:
    """The `agent_state` outbox record of a snapshot: one row of the agent's state history. Its id
    is the session (the agent's leg, unique per login) and version, so a retry writes it once."""
    return {
        "change_id": f"{snapshot.channel_id}:{snapshot.version}",
        "agent_id": snapshot.agent_id,
        "state": snapshot.state.value,
        "since": datetime.fromtimestamp(snapshot.since, UTC).isoformat(),
        "version": snapshot.version,
        "session_id": snapshot.channel_id,
        "campaign_ids": list(snapshot.campaign_ids),
        "call_id": snapshot.call_id,
        "pause_reason": snapshot.pause_reason,
    }


class AgentSession:
    """The session of one logged-in agent; every method returns the new snapshot."""

    def __init__(
        self,
        agent_id: str,
        campaign_ids: tuple[str, ...],
        channel_id: str,
        now: float,
        *,
        wrap_up_seconds: float = 30.0,
    ) -> None:
        if wrap_up_seconds < 0:
            raise ValueError(f"wrap_up_seconds must be >= 0, got {wrap_up_seconds}")
        self.agent_id = agent_id
        self.campaign_ids = campaign_ids
        self.channel_id = channel_id
        self.wrap_up_seconds = wrap_up_seconds
        self.state = AgentState.LOGGING_IN
        self.since = now
        self.version = 0
        self.call_id: str | None = None
        self.pause_reason: str | None = None
        self.wrap_up_until: float | None = None
        self.logout_reason: str | None = None
        # A pause or logout asked for while on a call takes effect when the call ends.
        self._pending_pause: str | None = None
        self._pending_logout = False

    # -- queries -----------------------------------------------------------------------
    @property
    def snapshot(self) -> AgentSnapshot:
        return AgentSnapshot(
            self.agent_id, self.state, self.since, self.version, self.campaign_ids, self.channel_id,
            self.call_id, self.pause_reason, self.wrap_up_until, self.logout_reason,
        )

    @property
    def available(self) -> bool:
        return self.state is AgentState.READY

    @property
    def active(self) -> bool:
        return self.state is not AgentState.LOGGED_OUT

    def next_timer(self) -> float | None:
        """When `handle_timer` must be called (the end of wrap-up), or None."""
        return self.wrap_up_until if self.state is AgentState.WRAP_UP else None

    # -- transitions ---------------------------------------------------------------------
    def _set(self, state: AgentState, now: float) -> AgentSnapshot:
        self.state = state
        self.since = max(now, self.since)
        self.version += 1
        if state is not AgentState.WRAP_UP:
            self.wrap_up_until = None
        if state is not AgentState.PAUSED:
            self.pause_reason = None
        if state in (AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT):
            self.call_id = None
        return self.snapshot

    def _require(self, operation: str, *states: AgentState) -> None:
        if self.state not in states:
            raise InvalidStateError(f"agent {self.agent_id!r} is {self.state.value}; cannot {operation}",
                                    state=self.state, operation=operation)

    def leg_up(self, now: float) -> AgentSnapshot:
        """The softphone answered and sits in the holding bridge."""
        self._require("come up", AgentState.LOGGING_IN)
        return self._set(AgentState.READY, now)

    def reserve(self, call_id: str, now: float) -> AgentSnapshot:
        """Take a ready agent for an answered lead (one call at a time)."""
        self._require("be reserved", AgentState.READY)
        self.call_id = call_id
        return self._set(AgentState.RESERVED, now)

    def release(self, now: float) -> AgentSnapshot:
        """The reservation fell through before the agent joined the call."""
        self._require("be released", AgentState.RESERVED)
        return self._after_call(now, wrap=False)

    def connected(self, now: float) -> AgentSnapshot:
        self._require("be connected", AgentState.RESERVED)
        return self._set(AgentState.ON_CALL, now)

    def call_ended(self, now: float) -> AgentSnapshot:
        """The call is over: wrap-up, timed (it ends with the disposition or the timeout)."""
        self._require("end a call", AgentState.ON_CALL, AgentState.RESERVED)
        return self._after_call(now, wrap=True)

    def _after_call(self, now: float, *, wrap: bool) -> AgentSnapshot:
        if self._pending_logout:
            self._pending_logout = False
            self.logout_reason = "requested"
            return self._set(AgentState.LOGGED_OUT, now)
        if wrap and self.wrap_up_seconds > 0:
            self.wrap_up_until = now + self.wrap_up_seconds
            return self._set(AgentState.WRAP_UP, now)
        return self._settle(now)

    def _settle(self, now: float) -> AgentSnapshot:
        if self._pending_pause is not None:
            reason, self._pending_pause = self._pending_pause, None
            self.pause_reason = reason
            return self._set(AgentState.PAUSED, now)
        return self._set(AgentState.READY, now)

    def disposed(self, now: float) -> AgentSnapshot:
        """The agent sent the call's disposition: wrap-up is over."""
        self._require("end wrap-up", AgentState.WRAP_UP)
        return self._settle(now)

    def ready(self, now: float) -> AgentSnapshot:
        """The agent asks to take calls (from paused, or ending wrap-up early)."""
        self._require("become ready", AgentState.PAUSED, AgentState.WRAP_UP, AgentState.READY)
        self._pending_pause = None
        return self._set(AgentState.READY, now)

    def pause(self, reason: str, now: float) -> AgentSnapshot:
        """Pause now when idle; on a call (or reserved, or wrapping up) once it is over."""
        if not reason:
            raise ValueError("a pause needs a reason")
        if self.state in (AgentState.READY, AgentState.PAUSED):
            self.pause_reason = reason
            return self._set(AgentState.PAUSED, now)
        self._require("pause", AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP, AgentState.LOGGING_IN)
        self._pending_pause = reason
        return self.snapshot

    def logout(self, now: float, reason: str = "requested") -> AgentSnapshot:
        """Log out: at once when idle; after the call when on one (the call is not cut)."""
        if self.state is AgentState.LOGGED_OUT:
            return self.snapshot
        if self.state in (AgentState.RESERVED, AgentState.ON_CALL):
            self._pending_logout = True
            return self.snapshot
        self.logout_reason = reason
        return self._set(AgentState.LOGGED_OUT, now)

    def leg_lost(self, now: float) -> AgentSnapshot:
        """The agent's leg hung up (softphone closed, network): the session ends cleanly."""
        if self.state is AgentState.LOGGED_OUT:
            return self.snapshot
        self.logout_reason = "leg_lost"
        return self._set(AgentState.LOGGED_OUT, now)

    def handle_timer(self, now: float) -> AgentSnapshot | None:
        """Wrap-up timed out: the agent takes calls again (or pauses, if asked)."""
        if self.state is AgentState.WRAP_UP and self.wrap_up_until is not None and now >= self.wrap_up_until:
            return self._settle(now)
        return None
