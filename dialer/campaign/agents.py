"""Logged-in agents on nailed-up legs (`AgentRunner`), and the floor that matches answered
calls with ready agents (`AgentFloor`).

An agent's softphone is called once at login (`PJSIP/agent1001`, or a simulated
`Local/ID@agent-sim`) into the app; once it answers it waits in the agent's own holding bridge
until logout, and an answered lead joins the agent with one bridge operation.

Each agent is one owned object. Its session (`AgentSession`, pure) changes only through
`AgentRunner.apply()`, which runs the transition at once: choosing a ready agent and reserving
it is one step, no other call can take the agent in between. Everything that touches the
outside world (its leg's ARI events, moving its leg back to its holding bridge after a call,
saving its state in Redis so a restarted controller can take the leg back, hanging up at
logout) goes through the agent's inbox and is done by its one task, in order; the same task
waits for the end of wrap-up (the machine's timer), so no loop polls the agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from crm_bridge.kinds import RecordKind
from dialer.ari.errors import AriError, Conflict
from dialer.ari.models import ChannelDestroyed, ChannelHold, ChannelUnhold, Event, StasisStart
from dialer.campaign.agent import AgentSession, AgentSnapshot, AgentState, agent_state_record
from dialer.runtime.errors import InvalidStateError
from dialer.runtime.hold import hold_music
from dialer.runtime.services import CallServices

log = structlog.get_logger(__name__)

STATE_SAVE_SECONDS = 2.0


class StateStore(Protocol):
    """Where agent states are kept (a Redis hash): agent id -> JSON snapshot."""

    def hset(self, name: str, key: str, value: str) -> Awaitable[Any]: ...

    def hgetall(self, name: str) -> Awaitable[Any]: ...

    def hdel(self, name: str, *keys: str) -> Awaitable[Any]: ...


class AgentCall(Protocol):
    """A campaign call as the floor sees it: who may take it, and how it is told."""

    @property
    def call_id(self) -> str: ...

    @property
    def campaign_id(self) -> str: ...

    @property
    def inbound(self) -> bool: ...

    @property
    def bridge_id(self) -> str: ...

    @property
    def owner_agent_id(self) -> str | None: ...

    def agent_assigned(self, agent: AgentRunner) -> None: ...

    def agent_left(self) -> None: ...


class AgentFloorHost(Protocol):
    """What the floor tells the campaigns: an agent turned ready, or ended a wrap-up."""

    def agent_ready(self, campaign_ids: tuple[str, ...]) -> None: ...

    def wrap_ended(self, campaign_ids: tuple[str, ...], seconds: float) -> None: ...


@dataclass(frozen=True)
class ReturnFromCall:
    """The agent's call is over: its leg goes back to its holding bridge, then wrap-up."""

    call: AgentCall
    joined: bool


@dataclass(frozen=True)
class LegUp:
    """The agent's leg is up (a leg a previous controller left, taken back): it joins its
    holding bridge and the agent turns ready, as after the leg's own `StasisStart`."""


@dataclass(frozen=True)
class LegGone:
    """A reconciliation found the agent's leg, up before, no longer in Asterisk (its node
    restarted or was lost): the session ends as when the leg's `ChannelDestroyed` arrives."""


@dataclass(frozen=True)
class Detach:
    """The controller stops without logging the agent out: the leg stays up for the next one."""


AgentInput = Event | AgentSnapshot | ReturnFromCall | LegUp | LegGone | Detach


class AgentRunner:
    """One logged-in agent: its session machine, its nailed-up channel and holding bridge."""

    def __init__(self, floor: AgentFloor, session: AgentSession, endpoint: str) -> None:
        self.floor = floor
        self.services = floor.services
        self.session = session
        self.endpoint = endpoint
        self.owner_id = session.channel_id
        self.hold_bridge = f"{session.channel_id}-hold"
        self.call: AgentCall | None = None
        self.inbox: asyncio.Queue[AgentInput] = asyncio.Queue()
        self.done = asyncio.Event()
        self.log = log.bind(agent_id=session.agent_id)

    @property
    def agent_id(self) -> str:
        return self.session.agent_id

    @property
    def channel_id(self) -> str:
        return self.session.channel_id

    # -- EventConsumer (the dispatcher's task for this agent's channel) ------------------
    async def handle_event(self, event: Event, generation: int) -> None:
        del generation  # an agent's leg outlives reconnects: every event of it counts
        self.inbox.put_nowait(event)

    # -- changes -----------------------------------------------------------------------
    def apply(self, transition: Callable[[float], AgentSnapshot | None]) -> AgentSnapshot:
        """Run one transition of the session now (it may raise `InvalidStateError`); publish the
        new state to the agent's consoles and queue its saving for the agent's task."""
        was = self.session.snapshot
        snapshot = transition(time.time()) or was
        if snapshot.version == was.version:
            return snapshot
        self.services.agent_events.publish(self.agent_id, snapshot.to_json())
        self.inbox.put_nowait(snapshot)
        self.log.debug("agent_state", state=snapshot.state.value, version=snapshot.version)
        if was.state is AgentState.WRAP_UP and snapshot.state is not AgentState.WRAP_UP:
            self.floor.host.wrap_ended(self.session.campaign_ids, snapshot.since - was.since)
        if snapshot.state is AgentState.READY:
            self.floor.offer(self)
        return snapshot

    def reserve(self, call: AgentCall) -> None:
        self.apply(lambda now: self.session.reserve(call.call_id, now))
        self.call = call

    def connected(self) -> None:
        """The agent is in the call's bridge with the lead."""
        if self.session.state is AgentState.RESERVED:
            self.apply(self.session.connected)

    def return_from_call(self, call: AgentCall, *, joined: bool) -> None:
        self.inbox.put_nowait(ReturnFromCall(call, joined))

    def adopt_leg(self) -> None:
        """Take back a leg that is already up."""
        self.inbox.put_nowait(LegUp())

    def detach(self) -> None:
        """Stop running this agent, leaving its leg and holding bridge up (a rolling restart)."""
        self.inbox.put_nowait(Detach())

    # -- the task ----------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while not self.done.is_set():
                deadline = self.session.next_timer()
                try:
                    async with asyncio.timeout(None if deadline is None else max(0.0, deadline - time.time())):
                        item = await self.inbox.get()
                except TimeoutError:
                    self.apply(self.session.handle_timer)  # the end of wrap-up
                    continue
                await self._handle(item)
        except Exception:
            self.log.exception("agent_runner_failed")
        finally:
            self.done.set()
            self.floor.forget(self)

    async def _handle(self, item: AgentInput) -> None:
        match item:
            case LegUp():
                await self._leg_up()
            case StasisStart(channel=channel) if channel.id == self.channel_id:
                await self._leg_up()
            case ChannelDestroyed(channel=channel, cause=cause, cause_txt=text) if channel.id == self.channel_id:
                self.log.info("agent_leg_gone", cause=cause, cause_text=text, state=self.session.state.value)
                self._leg_lost()
            case LegGone():
                self.log.warning("agent_leg_gone", cause=None, cause_text="not in Asterisk at reconciliation",
                                 state=self.session.state.value)
                self._leg_lost()
            case ChannelHold() | ChannelUnhold() if self.call is not None:
                await hold_music(self.services.ari, item, agent_channel=self.channel_id, bridge_id=self.call.bridge_id)
            case ReturnFromCall(call=call, joined=joined):
                await self._return_from(call, joined)
            case Detach():
                self.done.set()
            case AgentSnapshot():
                await self._save(item)
                if item.state is AgentState.LOGGED_OUT:
                    await self._end()

    def _leg_lost(self) -> None:
        if self.call is not None:
            self.call.agent_left()
        self.apply(self.session.leg_lost)

    def leg_missing(self) -> None:
        """A reconciliation did not find the agent's leg; ignored unless the leg was up."""
        if self.session.state not in (AgentState.LOGGING_IN, AgentState.LOGGED_OUT):
            self.inbox.put_nowait(LegGone())

    async def _leg_up(self) -> None:
        ari = self.services.ari
        try:
            with contextlib.suppress(Conflict):  # a recovered session's bridge may still exist
                await ari.create_bridge(self.hold_bridge, name=f"hold {self.agent_id}")
            await ari.add_channel(self.hold_bridge, self.channel_id)
        except AriError as error:
            self.log.error("agent_holding_bridge_failed", error=str(error))
            with contextlib.suppress(AriError):
                await ari.hangup(self.channel_id)
            return
        with contextlib.suppress(InvalidStateError):
            self.apply(self.session.leg_up)

    async def _return_from(self, call: AgentCall, joined: bool) -> None:
        if self.call is not call:
            return
        self.call = None
        if self.session.state is AgentState.LOGGED_OUT:
            return
        # Back in the holding bridge before the agent is offered another call: adding the leg to
        # the next call's bridge after this move would otherwise be undone by it.
        with contextlib.suppress(AriError):
            await self.services.ari.add_channel(self.hold_bridge, self.channel_id)
        if self.session.state is AgentState.RESERVED and joined:
            self.apply(self.session.connected)
        with contextlib.suppress(InvalidStateError):
            self.apply(self.session.call_ended if joined else self.session.release)

    async def _save(self, snapshot: AgentSnapshot) -> None:
        try:
            # The state history the reports' occupancy is read from (durable: the outbox).
            await self.services.records.put(RecordKind.AGENT_STATE, agent_state_record(snapshot))
        except Exception as error:
            self.log.warning("agent_state_not_recorded", error=repr(error))
        states = self.floor.states
        key = self.floor.redis_key
        try:
            # Bounded: a stalled Redis must not hold up the agent's own task (its calls, its leg).
            async with asyncio.timeout(STATE_SAVE_SECONDS):
                if snapshot.state is AgentState.LOGGED_OUT:
                    await states.hdel(key, self.agent_id)
                else:
                    await states.hset(key, self.agent_id,
                                      json.dumps({**snapshot.to_json(), "endpoint": self.endpoint}))
        except Exception as error:  # Redis down: the session goes on; only recovery suffers
            self.log.warning("agent_state_not_saved", error=repr(error))

    async def _end(self) -> None:
        """Logged out: the leg hung up (if still up) and the holding bridge gone; the runner stops."""
        ari = self.services.ari
        if self.session.logout_reason != "leg_lost":
            with contextlib.suppress(AriError):
                await ari.hangup(self.channel_id, reason="normal")
        with contextlib.suppress(AriError):
            await ari.destroy_bridge(self.hold_bridge)
        self.done.set()


@dataclass
class _Waiting:
    call: AgentCall
    since: float = field(default_factory=time.time)


class AgentFloor:
    """The logged-in agents and the answered calls waiting for one of them."""

    def __init__(self, host: AgentFloorHost, services: CallServices, states: StateStore, redis_key: str,
                 wrap_up_seconds: float) -> None:
        self.host = host
        self.services = services
        self.states = states
        self.redis_key = redis_key
        self.wrap_up_seconds = wrap_up_seconds
        self.agents: dict[str, AgentRunner] = {}
        self._waiting: deque[_Waiting] = deque()

    def start(self, session: AgentSession, endpoint: str, spawn: Callable[[Any, str], None]) -> AgentRunner:
        """Keep an agent (before its leg is originated: its first event already has an owner)."""
        agent = AgentRunner(self, session, endpoint)
        self.services.dispatcher.register(agent.owner_id, agent, channel_ids=[agent.channel_id],
                                          bridge_ids=[agent.hold_bridge])
        self.agents[agent.agent_id] = agent
        spawn(agent.run(), f"agent-{agent.agent_id}")
        self.services.agent_events.publish(agent.agent_id, session.snapshot.to_json())
        agent.inbox.put_nowait(session.snapshot)
        return agent

    def forget(self, agent: AgentRunner) -> None:
        if self.agents.get(agent.agent_id) is agent:
            del self.agents[agent.agent_id]
        self.services.dispatcher.unregister(agent.owner_id)

    def holds(self, owner_id: str) -> bool:
        """Whether a channel owner id (`ags-<hex>`) is a live agent's."""
        return any(agent.owner_id == owner_id for agent in self.agents.values())

    def of(self, campaign_id: str) -> list[AgentRunner]:
        return [agent for agent in self.agents.values() if campaign_id in agent.session.campaign_ids]

    def agent_channels(self, campaign_id: str) -> list[str]:
        """The legs of a campaign's agents logged in, ready or busy (its calls are placed on their
        nodes: a predictive line is dialed for an agent about to be free too)."""
        return [agent.channel_id for agent in self.of(campaign_id)
                if agent.session.state not in (AgentState.LOGGING_IN, AgentState.LOGGED_OUT)]

    def ready_agents(self, campaign_id: str) -> frozenset[str]:
        """Agents of a campaign free to take a call now."""
        return frozenset(agent.agent_id for agent in self.of(campaign_id) if agent.session.available)

    # -- matching answered calls with agents -------------------------------------------------
    def want_agent(self, call: AgentCall) -> None:
        agent = self._pick(call, call.owner_agent_id)
        if agent is not None:
            self._assign(agent, call)
            return
        waiting = _Waiting(call)
        if call.inbound:
            # Inbound callers go ahead of outbound work (after earlier inbound callers).
            position = next((n for n, w in enumerate(self._waiting) if not w.call.inbound), len(self._waiting))
            self._waiting.insert(position, waiting)
        else:
            self._waiting.append(waiting)

    def cancel_want(self, call: AgentCall) -> None:
        self._waiting = deque(w for w in self._waiting if w.call is not call)

    def queue_position(self, call: AgentCall) -> int | None:
        """1-based place of a waiting inbound caller among the inbound callers ahead of it."""
        inbound = [w.call for w in self._waiting if w.call.inbound]
        return inbound.index(call) + 1 if call in inbound else None

    def waiting(self, campaign_id: str) -> int:
        return sum(1 for w in self._waiting if w.call.campaign_id == campaign_id)

    def _pick(self, call: AgentCall, owner: str | None = None) -> AgentRunner | None:
        # Only agents whose leg is on the call's node (one node: all of them): a bridge joins
        # channels of one node.
        ready = [agent for agent in self.of(call.campaign_id) if agent.session.available
                 and self.services.placement.same_node(agent.channel_id, call.bridge_id)]
        # A callback goes to the agent who owns it when that agent is free; else to anyone ready,
        # rather than leave the person unattended (47 CFR 64.1200(a)(7)).
        owned = [agent for agent in ready if agent.agent_id == owner]
        if owned:
            return owned[0]
        # The agent ready the longest takes the call (fair share of the work).
        return min(ready, key=lambda agent: agent.session.since, default=None)

    def _assign(self, agent: AgentRunner, call: AgentCall) -> None:
        agent.reserve(call)
        call.agent_assigned(agent)

    def offer(self, agent: AgentRunner) -> None:
        """A ready agent takes the oldest answered call of its campaigns that waits for one; and
        the campaigns learn they have a free agent (a line to dial now, not at the next tick)."""
        if not agent.session.available:
            return
        for waiting in list(self._waiting):
            if waiting.call.campaign_id in agent.session.campaign_ids and \
                    self.services.placement.same_node(agent.channel_id, waiting.call.bridge_id):
                self._waiting.remove(waiting)
                self._assign(agent, waiting.call)
                return
        self.host.agent_ready(agent.session.campaign_ids)
