"""The state history of agents who only click to call (no campaign session), as a pure machine.

A campaign agent's session (`dialer.campaign.agent`) records every state change in
`agent_state_changes`, and occupancy is read from there. An agent who only places click-to-call
calls has no session, so without this nothing would be recorded for them. Their calls give them
one: a call being set up makes them `reserved`, the lead on the line `on_call`, a call that
ends after a conversation `wrap_up` (until the disposition for it is sent, or `wrap_up_seconds`
pass), a call that ends without one `ready`. `ready` lasts until the next call or
`idle_seconds` without one: the session then ends (`logged_out`, at that instant), and the
next call starts a new one. Campaign agents' click-to-call calls are not tracked here (their
session records their state). There is no pause without a session: a click-to-call agent who
steps away is `ready` at most `idle_seconds`.

Nothing here does IO: the runtime (`dialer.click_to_call.runtime`) feeds it the calls' states
and the time, and writes the snapshots it returns as `agent_state` records.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dialer.campaign.agent import AgentSnapshot, AgentState
from dialer.click_to_call.record import CallState

_SETTING_UP = frozenset({CallState.REQUESTED, CallState.AGENT_RINGING, CallState.AGENT_ANSWERED,
                         CallState.GATE_RECHECK, CallState.LEAD_RINGING, CallState.LEAD_ANSWERED})
_OVER = frozenset({CallState.ENDING, CallState.ENDED})


@dataclass(frozen=True)
class _Session:
    snapshot: AgentSnapshot
    talked: bool = False  # the current call reached the lead (so its end is a wrap-up)


class ClickToCallPresence:
    """Every click-to-call-only agent's current state; each method returns the changes to record
    (oldest first), each with its own exact `since`."""

    def __init__(self, *, wrap_up_seconds: float = 30.0, idle_seconds: float = 600.0) -> None:
        if wrap_up_seconds < 0 or idle_seconds <= 0:
            raise ValueError("wrap_up_seconds must be >= 0 and idle_seconds > 0")
        self.wrap_up_seconds = wrap_up_seconds
        self.idle_seconds = idle_seconds
        self._sessions: dict[str, _Session] = {}

    def state_of(self, agent_id: str) -> AgentSnapshot | None:
        session = self._sessions.get(agent_id)
        return None if session is None else session.snapshot

    def call_state(self, agent_id: str, call_id: str, state: CallState, campaign_id: str | None,
                   now: float) -> list[AgentSnapshot]:
        """A snapshot of the agent's click-to-call call `call_id`."""
        changes = self.due(now)
        session = self._sessions.get(agent_id)
        current = None if session is None else session.snapshot
        if current is not None and current.call_id != call_id and state in _OVER:
            return changes  # the end of an earlier call, already followed by another
        campaigns = (campaign_id,) if campaign_id else ()
        if state in _SETTING_UP:
            target, talked = AgentState.RESERVED, False
        elif state is CallState.BRIDGED:
            target, talked = AgentState.ON_CALL, True
        elif state in _OVER and session is not None:
            target, talked = (AgentState.WRAP_UP if session.talked else AgentState.READY), session.talked
        else:
            return changes  # the end of a call never seen set up: nothing to end
        if current is None:
            # The first call after a while starts a session, named by that call.
            current = AgentSnapshot(agent_id, target, now, 0, campaigns, f"click-to-call:{agent_id}:{call_id}")
        if current.state is target and current.call_id == call_id:
            return changes
        wrap_until = now + self.wrap_up_seconds if target is AgentState.WRAP_UP else None
        snapshot = replace(current, state=target, since=now, version=current.version + 1, campaign_ids=campaigns,
                           call_id=call_id if target is not AgentState.READY else None, wrap_up_until=wrap_until)
        self._sessions[agent_id] = _Session(snapshot, talked)
        return [*changes, snapshot]

    def disposed(self, agent_id: str, call_id: str, now: float) -> list[AgentSnapshot]:
        """The agent sent the disposition of `call_id`: its wrap-up is over."""
        changes = self.due(now)
        session = self._sessions.get(agent_id)
        if session is None or session.snapshot.state is not AgentState.WRAP_UP or session.snapshot.call_id != call_id:
            return changes
        return [*changes, self._move(agent_id, session.snapshot, AgentState.READY, now)]

    def next_due(self) -> float | None:
        """When `due` next has something to do (None: no session is open)."""
        deadlines = [self._deadline(session.snapshot) for session in self._sessions.values()]
        found = [deadline for deadline in deadlines if deadline is not None]
        return min(found) if found else None

    def due(self, now: float) -> list[AgentSnapshot]:
        """The wrap-ups and idle spells over by `now`, each ended at its own deadline."""
        changes: list[AgentSnapshot] = []
        for agent_id in sorted(self._sessions):
            while agent_id in self._sessions:
                snapshot = self._sessions[agent_id].snapshot
                deadline = self._deadline(snapshot)
                if deadline is None or deadline > now:
                    break
                if snapshot.state is AgentState.WRAP_UP:
                    changes.append(self._move(agent_id, snapshot, AgentState.READY, deadline))
                else:
                    changes.append(replace(snapshot, state=AgentState.LOGGED_OUT, since=deadline,
                                           version=snapshot.version + 1, logout_reason="idle"))
                    del self._sessions[agent_id]
        return changes

    def end_all(self, now: float, reason: str = "shutdown") -> list[AgentSnapshot]:
        """Every open session ended at `now` (the controller drains): no state is left open for
        the reports to stretch to "now"."""
        changes = self.due(now)
        for agent_id in sorted(self._sessions):
            snapshot = self._sessions.pop(agent_id).snapshot
            changes.append(replace(snapshot, state=AgentState.LOGGED_OUT, since=now, version=snapshot.version + 1,
                                   call_id=None, wrap_up_until=None, logout_reason=reason))
        return changes

    def _deadline(self, snapshot: AgentSnapshot) -> float | None:
        if snapshot.state is AgentState.WRAP_UP:
            return snapshot.since + self.wrap_up_seconds
        if snapshot.state is AgentState.READY:
            return snapshot.since + self.idle_seconds
        return None

    def _move(self, agent_id: str, snapshot: AgentSnapshot, state: AgentState, at: float) -> AgentSnapshot:
        moved = replace(snapshot, state=state, since=at, version=snapshot.version + 1, call_id=None,
                        wrap_up_until=None)
        self._sessions[agent_id] = _Session(moved, False)
        return moved
