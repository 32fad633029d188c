"""The event streams (WebSockets): an agent's console follows `GET /v1/agents/{agent_id}/events`
(its state, screen pops, its calls' states) and a supervisor's wallboard follows
`GET /v1/events` (every agent's state, the live calls and the running campaigns' figures).

Every message is a JSON object with a `type`; the schemas are in the OpenAPI document
(`components/schemas`: `AgentStreamMessage`, `SupervisorStreamMessage`) and in the AsyncAPI
document served at `/v1/asyncapi.json`. Times are ISO-8601 UTC. A client that cannot keep up
loses its oldest messages (never slows the dialer): the first message after connecting is a
full state, so reconnecting is always enough to be right again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import structlog
from aiohttp import WSMsgType, web
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import TokenRole
from dialer.api.http import DEPS, SESSION, ApiError, own_agent
from dialer.api.routes import Answer, RouteTable
from dialer.api.schema import QueryModel, ResponseModel, UtcTime, utc_from_epoch
from dialer.campaign.api import CAMPAIGNS
from dialer.campaign.openapi import AgentStateBody, CampaignStatusBody
from dialer.monitor.api import MONITORS
from dialer.monitor.openapi import LiveCallBody
from dialer.runtime.agent_events import QUEUE_LIMIT, AgentEventHub
from dialer.runtime.agents import refuse_unknown_agent
from dialer.tasks import start_task, stop_tasks

log = structlog.get_logger(__name__)
routes = RouteTable("events")
HEARTBEAT_SECONDS = 10.0
SESSION_CHECK_SECONDS = 10.0  # how soon a stream ends after its session did (one query for all streams)


class EventHub(AgentEventHub):
    """The agents' hub, which also hands every agent's messages to the supervisors' streams."""

    def __init__(self) -> None:
        super().__init__()
        self._staff: set[asyncio.Queue[tuple[str, dict[str, Any]]]] = set()

    def publish(self, agent_id: str, message: dict[str, Any]) -> None:
        super().publish(agent_id, message)
        for queue in self._staff:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait((agent_id, message))

    @contextlib.asynccontextmanager
    async def subscribe_all(self) -> AsyncIterator[asyncio.Queue[tuple[str, dict[str, Any]]]]:
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(QUEUE_LIMIT)
        self._staff.add(queue)
        try:
            yield queue
        finally:
            self._staff.discard(queue)


# ---- message schemas ---------------------------------------------------------------------------
class Subscribed(ResponseModel):
    """The first message: the stream is open."""

    type: Literal["subscribed"] = "subscribed"
    agent_id: str | None = Field(default=None, description="the agent followed (agent streams)")
    at: UtcTime


class ScreenPopLead(ResponseModel):
    lead_id: str
    name: str = Field(description="how the phone and console name the lead (the number when no name is known)")
    phone: str
    state: str | None
    zip: str | None
    pipeline_stage: str | None
    email: str | None
    phones: list[str] = Field(default_factory=list, description="E.164, most preferred first")
    address: str | None = Field(default=None, description="street and city, one line")
    timezone_hint: str | None = Field(default=None, description="the CRM's time zone for the lead, if it has one")
    timezones: list[str] = Field(default_factory=list, description="every zone the lead may be in (number, ZIP, "
                                                                   "state), as the compliance gate locates it")


class ScreenPop(ResponseModel):
    """Which lead is coming, before the agent hears it."""

    type: Literal["screen_pop"] = "screen_pop"
    call_id: str
    campaign_id: str | None
    direction: Literal["inbound", "outbound"] = "outbound"
    lead: ScreenPopLead


class CallState(ResponseModel):
    """A state change of one of the agent's calls (click-to-call)."""

    type: Literal["call_state"] = "call_state"
    call_id: str
    state: str
    outcome: str | None
    problem: str | None = Field(default=None, description=(
        "why the call failed, when the agent can act on it: `softphone_not_registered` (no phone is "
        "registered on the agent's endpoint), `sip_endpoint_unknown` (Asterisk has no such endpoint)"))


class TextLead(ResponseModel):
    lead_id: str | None
    name: str = Field(description="how the console names the lead (the number when no name is known)")
    pipeline_stage: str | None


class TextReceived(ResponseModel):
    """A text from a lead, pushed to the lead's owner (else the agent who last texted the number):
    docs/texting.md."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type: Literal["text_received"] = "text_received"
    message_id: str
    from_: str = Field(alias="from", description="the lead's number (E.164)")
    to: str = Field(description="our number the text was sent to")
    body: str
    keyword: str | None = Field(description="what the text asks for when it is a keyword: `opt_out` (STOP...), "
                                            "`opt_in` (START...), `help`")
    received_at: UtcTime
    lead: TextLead


class LiveCallsMessage(ResponseModel):
    """The calls in progress, sent when they changed."""

    type: Literal["calls"] = "calls"
    at: UtcTime
    calls: list[LiveCallBody]


class CampaignsMessage(ResponseModel):
    """The running campaigns' figures, sent when they changed."""

    type: Literal["campaigns"] = "campaigns"
    at: UtcTime
    campaigns: list[CampaignStatusBody]


class Snapshot(ResponseModel):
    """Everything a wallboard shows, sent once after `subscribed`."""

    type: Literal["snapshot"] = "snapshot"
    at: UtcTime
    agents: list[AgentStateBody]
    calls: list[LiveCallBody]
    campaigns: list[CampaignStatusBody]


AgentStreamMessage = Annotated[Subscribed | AgentStateBody | ScreenPop | CallState | TextReceived,
                               Field(discriminator="type")]
SupervisorStreamMessage = Annotated[
    Subscribed | Snapshot | AgentStateBody | LiveCallsMessage | CampaignsMessage, Field(discriminator="type")
]
_AGENT_MESSAGE: TypeAdapter[Any] = TypeAdapter(AgentStreamMessage)
STREAM_MESSAGES: dict[str, Any] = {"AgentStreamMessage": AgentStreamMessage,
                                   "SupervisorStreamMessage": SupervisorStreamMessage}


def agent_message(message: dict[str, Any]) -> dict[str, Any]:
    """A runtime's message as the stream sends it: epoch times become ISO-8601 UTC (the pure
    machines keep epoch seconds; this is the edge)."""
    if message.get("type") == "agent_state":
        message = {**message, **{name: _iso(message.get(name)) for name in ("since", "wrap_up_until")}}
    try:
        return dict(_AGENT_MESSAGE.dump_python(_AGENT_MESSAGE.validate_python(message), mode="json", by_alias=True))
    except ValidationError:
        log.debug("event_message_unchecked", type=message.get("type"))
        return message  # a kind of message this edge does not know yet: passed on as published


def _iso(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return utc_from_epoch(float(value))
    return value


class StreamQuery(QueryModel):
    access_token: str | None = Field(default=None, max_length=200,
                                     description="the bearer token, for browsers (which cannot set headers on a "
                                                 "WebSocket); never logged")


class WallboardQuery(StreamQuery):
    interval: float = Field(default=1.0, ge=0.2, le=60.0,
                            description="how often (seconds) the live calls and campaign figures are compared and "
                                        "sent when they changed")


WEBSOCKET = {101: Answer(None, "switching to the WebSocket protocol", content_type="")}


async def _open(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS)
    if not socket.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "connect with a WebSocket upgrade")
    await socket.prepare(request)
    return socket


_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class SessionWatch:
    """Ends the event streams whose person's session ended (signed out, signed out everywhere,
    expired, or the user disabled). A stream checks its session only as it opens, so without
    this a console tab kept receiving screen pops (names, numbers) after its person signed out
    elsewhere.

    Every `SESSION_CHECK_SECONDS`, one query asks which of the sessions behind this process's
    open streams still live (`live_sessions(ids)`), however many consoles are open: a floor of
    200 agents is one query per interval, not 200. The checking task runs only while a stream
    is watched. A database that does not answer counts as alive: a blip must not drop every
    console."""

    def __init__(self, live_sessions: Callable[[Sequence[str]], Awaitable[set[str]]]) -> None:
        self._live_sessions = live_sessions
        self._watched: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.queries = 0  # how many times the sessions were asked about (one query each)
        self.last_asked = 0  # how many sessions the last query asked about

    @contextlib.contextmanager
    def watch(self, session_id: str) -> Iterator[asyncio.Event]:
        """An event set once `session_id` has ended, checked while the `with` block runs."""
        ended = asyncio.Event()
        self._watched.setdefault(session_id, set()).add(ended)
        if self._task is None or self._task.done():
            self._task = start_task(self._check_periodically(), "event-stream-sessions")
        try:
            yield ended
        finally:
            streams = self._watched.get(session_id)
            if streams is not None:
                streams.discard(ended)
                if not streams:
                    del self._watched[session_id]

    async def check(self) -> None:
        """Ask once for every watched session; end the streams of those that ended."""
        asked = list(self._watched)
        if not asked:
            return
        self.queries += 1
        self.last_asked = len(asked)
        try:
            live = await self._live_sessions(asked)
        except DatabaseUnavailable:
            return
        for session_id in asked:
            if session_id not in live:
                ended = self._watched.pop(session_id, set())
                log.info("event_stream_session_ended", streams=len(ended))
                for stream in ended:
                    stream.set()

    async def _check_periodically(self) -> None:
        while self._watched:
            await asyncio.sleep(SESSION_CHECK_SECONDS)
            try:
                await self.check()
            except Exception:
                # A fault check() does not expect (DatabaseUnavailable it does): logged, and asked
                # again next round, so the open streams stay watched (a signed-out person's tab
                # must not keep receiving screen pops because one query failed).
                log.exception("event_stream_session_check_failed", sessions=len(self._watched))

    async def close(self, app: web.Application | None = None) -> None:
        """Stop checking (the app's cleanup, `add_session_routes`): no task outlives the server."""
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None


SESSION_WATCH: web.AppKey[SessionWatch] = web.AppKey("session_watch", SessionWatch)


def _session_ended(request: web.Request) -> contextlib.AbstractContextManager[asyncio.Event | None]:
    """For a stream opened with a person's session cookie: an event set once that session ended
    (`SessionWatch`); none for a bearer token's stream (tokens are revoked, not signed out)."""
    signed = request.get(SESSION)
    watch = request.app.get(SESSION_WATCH)
    if signed is None or watch is None:
        return contextlib.nullcontext(None)
    return watch.watch(signed.session_id)


async def _pump(socket: web.WebSocketResponse, next_message: Callable[[], Awaitable[dict[str, Any]]],
                ended: asyncio.Event | None = None) -> None:
    """Send what `next_message()` gives until the client goes away (its own messages are ignored)
    or `ended` is set (the session behind the stream has ended)."""
    receiver: asyncio.Future[Any] = asyncio.ensure_future(socket.receive())
    getter: asyncio.Future[dict[str, Any]] | None = None
    ending: asyncio.Future[Any] = asyncio.ensure_future(ended.wait()) if ended is not None else (
        asyncio.get_running_loop().create_future())
    try:
        while not socket.closed:
            if getter is None:
                getter = asyncio.ensure_future(next_message())
            done, _ = await asyncio.wait({getter, receiver, ending}, return_when=asyncio.FIRST_COMPLETED)
            if ending in done:
                break
            if receiver in done:
                if receiver.result().type in _CLOSING:
                    break
                receiver = asyncio.ensure_future(socket.receive())
            if getter in done:
                await socket.send_json(getter.result())
                getter = None
    finally:
        receiver.cancel()
        ending.cancel()
        if getter is not None:
            getter.cancel()


@routes.get("/v1/agents/{agent_id}/events", "agentEvents",
            "WebSocket of an agent's state, screen pops and call states (messages: AgentStreamMessage)",
            roles=(TokenRole.AGENT, TokenRole.SUPERVISOR, TokenRole.ADMIN), parameters={"agent_id": "the agent's id"},
            query=StreamQuery, responses=WEBSOCKET,
            errors={400: "`websocket_required`: connect with a WebSocket upgrade",
                    403: "an agent may follow only its own events; CRM tokens may not follow agents",
                    404: "`agent_not_found`: the CRM has no such agent (answered before the upgrade)"},
            extra={"x-websocket-messages": {"$ref": "#/components/schemas/AgentStreamMessage"}})
async def agent_events(request: web.Request, query: StreamQuery) -> web.StreamResponse:
    """Browsers may pass the token as `?access_token=`. Messages: `subscribed`, then
    `agent_state` (every change), `screen_pop` (a lead is coming), `call_state`, `text_received`
    (a text from a lead the agent works)."""
    del query
    agent_id = own_agent(request, request.match_info["agent_id"], "follow only its own events")
    await refuse_unknown_agent(request.app[DEPS].store, agent_id)  # before the upgrade: a plain 404
    socket = await _open(request)
    async with request.app[DEPS].agent_events.subscribe(agent_id) as queue:
        await socket.send_json(Subscribed(agent_id=agent_id, at=datetime.now(UTC)).model_dump(mode="json"))

        async def next_message() -> dict[str, Any]:
            return agent_message(await queue.get())

        with _session_ended(request) as ended:
            await _pump(socket, next_message, ended)
    await socket.close()
    return socket


class Wallboard:
    """What a supervisor's stream shows, read from the runtimes' memory (no database)."""

    def __init__(self, request: web.Request) -> None:
        self.campaigns = request.app.get(CAMPAIGNS)
        self.monitors = request.app.get(MONITORS)

    def agents(self) -> list[AgentStateBody]:
        if self.campaigns is None:
            return []
        found = (self.campaigns.agent_state(agent_id) for agent_id in sorted(self.campaigns.agents))
        return [AgentStateBody.of(snapshot) for snapshot in found if snapshot is not None]

    def calls(self) -> list[LiveCallBody]:
        if self.monitors is None:
            return []
        return [LiveCallBody.of(call, self.monitors.monitors_of(call.call_id)) for call in self.monitors.live_calls()]

    def figures(self) -> list[CampaignStatusBody]:
        if self.campaigns is None:
            return []
        found = (self.campaigns.campaign_status(campaign_id) for campaign_id in sorted(self.campaigns.campaigns))
        return [CampaignStatusBody.of(status) for status in found if status is not None]


@routes.get("/v1/events", "wallboardEvents",
            "WebSocket for a supervisor's wallboard: every agent's state, the live calls and the running campaigns' "
            "figures (messages: SupervisorStreamMessage)", roles=(TokenRole.SUPERVISOR, TokenRole.ADMIN),
            query=WallboardQuery, responses=WEBSOCKET,
            errors={400: "`websocket_required`: connect with a WebSocket upgrade"},
            extra={"x-websocket-messages": {"$ref": "#/components/schemas/SupervisorStreamMessage"}})
async def wallboard_events(request: web.Request, query: WallboardQuery) -> web.StreamResponse:
    """Messages: `subscribed`; `snapshot` (agents, calls, campaigns); then `agent_state` at every
    change of an agent, `calls` and `campaigns` when they changed (compared every `interval`
    seconds). Browsers may pass the token as `?access_token=`."""
    board = Wallboard(request)
    socket = await _open(request)
    hub = request.app[DEPS].agent_events
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
    versions: dict[str, int] = {}

    def send(message: dict[str, Any]) -> None:
        if outbox.full():
            outbox.get_nowait()
        outbox.put_nowait(message)

    async def relay_agents() -> None:
        if not isinstance(hub, EventHub):
            return  # the agents' states come with each tick instead
        async with hub.subscribe_all() as queue:
            while True:
                _, message = await queue.get()
                if message.get("type") == "agent_state":
                    shown = agent_message(message)
                    versions[str(shown["agent_id"])] = int(shown["version"])
                    send(shown)

    async def tick() -> None:
        last: tuple[list[LiveCallBody], list[CampaignStatusBody]] | None = None
        while True:
            for agent in board.agents():
                if versions.get(agent.agent_id) != agent.version:
                    versions[agent.agent_id] = agent.version
                    send(agent.model_dump(mode="json"))
            calls, figures = board.calls(), board.figures()
            now = datetime.now(UTC)
            if last is not None and calls != last[0]:
                send(LiveCallsMessage(at=now, calls=calls).model_dump(mode="json"))
            if last is not None and figures != last[1]:
                send(CampaignsMessage(at=now, campaigns=figures).model_dump(mode="json"))
            last = (calls, figures)
            await asyncio.sleep(query.interval)

    now = datetime.now(UTC)
    await socket.send_json(Subscribed(at=now).model_dump(mode="json"))
    agents = board.agents()
    versions.update({agent.agent_id: agent.version for agent in agents})
    await socket.send_json(Snapshot(at=now, agents=agents, calls=board.calls(), campaigns=board.figures())
                           .model_dump(mode="json"))
    async with asyncio.TaskGroup() as group:
        relay = group.create_task(relay_agents(), name="wallboard-agents")
        ticker = group.create_task(tick(), name="wallboard-tick")
        try:
            with _session_ended(request) as ended:
                await _pump(socket, outbox.get, ended)
        finally:
            relay.cancel()
            ticker.cancel()
    await socket.close()
    return socket
