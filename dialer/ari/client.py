"""ARI REST client over one pooled aiohttp session, returning the generated models.

Usage::

    async with AriClient(AriConfig.from_settings(settings)) as ari:
        info = await ari.asterisk_info()
        await ari.originate("call-42-lead", "PJSIP/5551234@carrier", app_args=["lead"])

Every call has a timeout. Only idempotent calls are retried (with a short backoff) when
Asterisk cannot be reached: GETs, DELETEs of a resource (a 404 on a retry means the first
attempt worked), and creations with an id we chose (originate, create channel, create bridge,
snoop: a 409 on a retry means the first attempt worked).
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import quote

import aiohttp
import structlog

from crm_bridge.backoff import Backoff
from dialer.ari.auth import basic_auth
from dialer.ari.errors import (
    AriProtocolError,
    AriTimeout,
    AriUnavailable,
    Conflict,
    NotFound,
    ServerError,
    request_error,
)
from dialer.ari.models import (
    Application,
    AsteriskInfo,
    AsteriskPing,
    Bridge,
    Channel,
    Endpoint,
    LiveRecording,
    Playback,
    StoredRecording,
    Variable,
)

if TYPE_CHECKING:
    from dialer.settings import Settings

log = structlog.get_logger(__name__)

M = TypeVar("M")

# Asterisk's http.conf `sessionlimit` defaults to 100 and counts WebSockets too: stay well under.
DEFAULT_CONNECTION_LIMIT: Final = 20
# Asterisk closes idle HTTP sessions after `session_keep_alive` = 15 s; reusing a connection
# it is about to close gives "connection reset", so we drop idle ones sooner.
DEFAULT_KEEPALIVE_SECONDS: Final = 10.0
DEFAULT_BRIDGE_TYPE: Final = "mixing,dtmf_events"
# REST retries are for a brief blip (a reset pooled connection), not for an outage.
DEFAULT_RETRY_BACKOFF: Final = Backoff(initial=0.05, maximum=0.5)


@dataclass(frozen=True)
class AriConfig:
    """Where and how to reach ARI. `url` is the ARI base, e.g. ``http://127.0.0.1:8088/ari``."""

    url: str
    user: str
    password: str = field(repr=False)
    app: str
    connection_limit: int = DEFAULT_CONNECTION_LIMIT
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS
    request_timeout: float = 10.0
    """Seconds for one attempt of one REST call."""
    retries: int = 2
    """Extra attempts of an idempotent call when Asterisk cannot be reached or fails (5xx)."""
    retry_backoff: Backoff = DEFAULT_RETRY_BACKOFF

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"ARI url must start with http:// or https://, got {self.url!r}")
        if not 0 < self.connection_limit < 100:
            raise ValueError(f"connection_limit must be 1..99 (Asterisk's sessionlimit is 100), got {self.connection_limit}")
        if not 0 < self.keepalive_seconds < 15:
            raise ValueError(f"keepalive_seconds must be under Asterisk's 15 s session_keep_alive, got {self.keepalive_seconds}")
        if self.request_timeout <= 0 or self.retries < 0:
            raise ValueError("request_timeout must be positive and retries not negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> AriConfig:
        """The ARI configuration of the engine's settings."""
        return cls(url=settings.ari_url, user=settings.ari_user, password=settings.ari_password, app=settings.ari_app)


class _Retry(enum.Enum):
    NEVER = "never"
    READ = "read"
    """GET: safe to repeat."""
    DELETE = "delete"
    """DELETE of a resource: a 404 after a retried attempt means the first one worked."""
    CREATE_WITH_ID = "create_with_id"
    """Creation with an id we chose: a 409 after a retried attempt means the first one worked."""


class _AlreadyDone:
    """Marker: a retried attempt found that an earlier attempt had taken effect."""


_ALREADY_DONE: Final = _AlreadyDone()

Params = Mapping[str, str | int | bool | None]


def _query(params: Params) -> dict[str, str]:
    query: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            query[key] = "true" if value else "false"
        else:
            query[key] = str(value)
    return query


def _segment(value: str) -> str:
    if not value:
        raise ValueError("ARI ids and names must not be empty")
    return quote(value, safe="")


def _app_args(args: Sequence[str] | None) -> str | None:
    # ARI splits appArgs on commas; an argument holding a comma would silently become two.
    if args is None:
        return None
    for arg in args:
        if "," in arg:
            raise ValueError(f"Stasis app arguments must not contain commas, got {arg!r}")
    return ",".join(args)


def _parse(parse: Callable[[Mapping[str, object], str], M], body: object, what: str) -> M:
    if not isinstance(body, Mapping):
        raise AriProtocolError(f"{what}: expected a JSON object, got {type(body).__name__}")
    try:
        return parse(body, what)
    except ValueError as error:
        raise AriProtocolError(str(error)) from error


def _parse_list(parse: Callable[[Mapping[str, object], str], M], body: object, what: str) -> tuple[M, ...]:
    if not isinstance(body, list):
        raise AriProtocolError(f"{what}: expected a JSON list, got {type(body).__name__}")
    return tuple(_parse(parse, item, f"{what}[{index}]") for index, item in enumerate(body))


class AriClient:
    """Typed ARI REST calls over one pooled `aiohttp.ClientSession`.

    Use as ``async with AriClient(config) as ari:`` (or `open()` / `close()`). The session is
    also used by `dialer.ari.events.EventStream` for the event WebSocket.
    """

    def __init__(self, config: AriConfig, *, unit_random: Callable[[], float] = random.random) -> None:
        self.config = config
        self._unit_random = unit_random
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=config.request_timeout)
        self.fence: Callable[[], None] | None = None
        """Called before every command that changes something (not before reads); raises to
        refuse it: a controller whose lease is over issues nothing (dialer.runtime.lease)."""

    async def __aenter__(self) -> AriClient:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the pooled session (idempotent)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.config.connection_limit,
                keepalive_timeout=self.config.keepalive_seconds,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"Authorization": basic_auth(self.config.user, self.config.password)},
                # No session-wide `total`: aiohttp would apply it to the whole life of the event
                # WebSocket that shares this session. Each REST call sets its own total instead.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.request_timeout),
            )

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled session; raises if the client is not open."""
        if self._session is None or self._session.closed:
            raise RuntimeError("AriClient is not open; use `async with AriClient(...)` or `await open()`")
        return self._session

    # -- transport ---------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Mapping[str, object] | None = None,
        retry: _Retry = _Retry.NEVER,
    ) -> object:
        """One ARI call: the decoded JSON body, None for 204, or `_ALREADY_DONE`."""
        attempts = 1 + (self.config.retries if retry is not _Retry.NEVER else 0)
        for attempt in range(1, attempts + 1):
            retried = attempt > 1
            try:
                return await self._attempt(method, path, params, body)
            except (AriUnavailable, ServerError) as error:
                if attempt == attempts:
                    raise
                delay = self.config.retry_backoff.delay(attempt, self._unit_random)
                log.info("ari.retry", method=method, path=path, attempt=attempt, error=str(error), delay=round(delay, 3))
                await asyncio.sleep(delay)
            except NotFound:
                if retried and retry is _Retry.DELETE:
                    return _ALREADY_DONE
                raise
            except Conflict:
                if retried and retry is _Retry.CREATE_WITH_ID:
                    return _ALREADY_DONE
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, method: str, path: str, params: Params | None, body: Mapping[str, object] | None
    ) -> object:
        if self.fence is not None and method != "GET":
            self.fence()
        return await self.send(method, path, params, body)

    async def send(
        self, method: str, path: str, params: Params | None = None, body: Mapping[str, object] | None = None
    ) -> object:
        """One attempt of one REST call, no retry: the decoded JSON body, or None for 204. (A
        cluster's client routes each attempt to a node's client through this.)"""
        url = self.config.url.rstrip("/") + path
        try:
            async with self.session.request(
                method, url, params=_query(params or {}), json=body, timeout=self._timeout
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise request_error(method, path, response.status, _error_message(text, response.reason))
                if response.status == 204 or not text:
                    return None
                try:
                    decoded: object = json.loads(text)
                except json.JSONDecodeError as error:
                    raise AriProtocolError(f"{method} {path}: response is not JSON: {text[:80]!r}") from error
                return decoded
        except TimeoutError as error:
            raise AriTimeout(f"{method} {path}: no answer within {self.config.request_timeout} s") from error
        except aiohttp.ClientError as error:
            # Connection refused or reset, server disconnected, broken payload: Asterisk is down
            # or restarting.
            raise AriUnavailable(f"{method} {path}: {type(error).__name__}: {error}") from error

    # -- asterisk and applications -------------------------------------------------------------

    async def asterisk_info(self) -> AsteriskInfo:
        """`GET /asterisk/info`: build, system (version), config and status."""
        return _parse(AsteriskInfo.from_json, await self._request("GET", "/asterisk/info", retry=_Retry.READ), "AsteriskInfo")

    async def ping(self) -> AsteriskPing:
        """`GET /asterisk/ping`."""
        return _parse(AsteriskPing.from_json, await self._request("GET", "/asterisk/ping", retry=_Retry.READ), "AsteriskPing")

    async def get_application(self, name: str | None = None) -> Application:
        """`GET /applications/{name}` (default: our app): what it is subscribed to."""
        path = f"/applications/{_segment(name or self.config.app)}"
        return _parse(Application.from_json, await self._request("GET", path, retry=_Retry.READ), "Application")

    async def list_applications(self) -> tuple[Application, ...]:
        """`GET /applications`."""
        return _parse_list(Application.from_json, await self._request("GET", "/applications", retry=_Retry.READ), "Application")

    async def subscribe(self, event_source: str, *, app: str | None = None) -> Application:
        """`POST /applications/{app}/subscription`, e.g. ``endpoint:PJSIP/agent1001`` for TextMessageReceived."""
        path = f"/applications/{_segment(app or self.config.app)}/subscription"
        body = await self._request("POST", path, params={"eventSource": event_source}, retry=_Retry.READ)
        return _parse(Application.from_json, body, "Application")

    async def unsubscribe(self, event_source: str, *, app: str | None = None) -> Application:
        """`DELETE /applications/{app}/subscription`."""
        path = f"/applications/{_segment(app or self.config.app)}/subscription"
        body = await self._request("DELETE", path, params={"eventSource": event_source})
        return _parse(Application.from_json, body, "Application")

    # -- channels ------------------------------------------------------------------------------

    async def list_channels(self) -> tuple[Channel, ...]:
        """`GET /channels`: every channel Asterisk has (not only ours)."""
        return _parse_list(Channel.from_json, await self._request("GET", "/channels", retry=_Retry.READ), "Channel")

    async def get_channel(self, channel_id: str) -> Channel:
        """`GET /channels/{id}`; `NotFound` when the channel is gone."""
        body = await self._request("GET", f"/channels/{_segment(channel_id)}", retry=_Retry.READ)
        return _parse(Channel.from_json, body, "Channel")

    async def _created(self, body: object, channel_id: str) -> Channel | None:
        if body is _ALREADY_DONE:
            # An earlier attempt created the channel and its response was lost.
            try:
                return await self.get_channel(channel_id)
            except NotFound:
                return None  # created and already hung up: its ChannelDestroyed tells the outcome
        return _parse(Channel.from_json, body, "Channel")

    async def originate(
        self,
        channel_id: str,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: Sequence[str] | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
        caller_id: str | None = None,
        ring_timeout: int = 30,
        variables: Mapping[str, str] | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: str | None = None,
    ) -> Channel | None:
        """`POST /channels/{channelId}`: dial `endpoint` with an id we chose.

        The channel enters our Stasis app (default) on answer, or, with `context`/`extension`,
        goes to the dialplan (e.g. the AMD context, which then calls Stasis). `ring_timeout` is
        in seconds. Retried when Asterisk is unreachable: a 409 on the retry means
        the first attempt worked. Returns the channel, or None when an earlier attempt created
        it and it is already gone (its `ChannelDestroyed` carries the outcome).
        """
        if context is not None or extension is not None:
            if app is not None or app_args is not None:
                raise ValueError("originate takes either app/app_args or context/extension/priority, not both")
            target: Params = {"context": context, "extension": extension, "priority": priority, "label": label}
        else:
            target = {"app": app or self.config.app, "appArgs": _app_args(app_args)}
        if ring_timeout <= 0:
            raise ValueError(f"originate ring_timeout must be positive seconds, got {ring_timeout}")
        params: Params = {
            "endpoint": endpoint,
            **target,
            "callerId": caller_id,
            "timeout": ring_timeout,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": formats,
        }
        body = await self._request(
            "POST",
            f"/channels/{_segment(channel_id)}",
            params=params,
            body={"variables": dict(variables)} if variables else None,
            retry=_Retry.CREATE_WITH_ID,
        )
        return await self._created(body, channel_id)

    async def create_channel(
        self,
        channel_id: str,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: Sequence[str] | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel | None:
        """`POST /channels/create`: a channel in Stasis that is not dialed yet (then `dial`).

        Unlike `originate`, the app sees the channel before answer (early media). Retried like
        `originate`.
        """
        params: Params = {
            "endpoint": endpoint,
            "app": app or self.config.app,
            "appArgs": _app_args(app_args),
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": formats,
        }
        _segment(channel_id)
        body = await self._request(
            "POST",
            "/channels/create",
            params=params,
            body={"variables": dict(variables)} if variables else None,
            retry=_Retry.CREATE_WITH_ID,
        )
        return await self._created(body, channel_id)

    async def dial(self, channel_id: str, *, ring_timeout: int, caller: str | None = None) -> None:
        """`POST /channels/{id}/dial` for a channel made by `create_channel`.

        `ring_timeout` (seconds) is mandatory: ARI's default 0 means ring forever.
        """
        if ring_timeout <= 0:
            raise ValueError(f"dial ring_timeout must be positive seconds (ARI's 0 rings forever), got {ring_timeout}")
        await self._request(
            "POST", f"/channels/{_segment(channel_id)}/dial", params={"timeout": ring_timeout, "caller": caller}
        )

    async def answer(self, channel_id: str) -> None:
        """`POST /channels/{id}/answer`."""
        await self._request("POST", f"/channels/{_segment(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        """`POST /channels/{id}/ring`: indicate ringing to the caller."""
        await self._request("POST", f"/channels/{_segment(channel_id)}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        """`DELETE /channels/{id}/ring`."""
        await self._request("DELETE", f"/channels/{_segment(channel_id)}/ring")

    async def hangup(self, channel_id: str, *, reason: str | None = None, reason_code: int | None = None) -> None:
        """`DELETE /channels/{id}`; `reason` is ARI's name (normal, busy, congestion, no_answer, ...).

        `NotFound` when the channel was already gone before our first attempt.
        """
        if reason is not None and reason_code is not None:
            raise ValueError("hangup takes reason or reason_code, not both")
        await self._request(
            "DELETE",
            f"/channels/{_segment(channel_id)}",
            params={"reason": reason, "reason_code": reason_code},
            retry=_Retry.DELETE,
        )

    async def play(
        self,
        channel_id: str,
        media: str | Sequence[str],
        *,
        playback_id: str | None = None,
        lang: str | None = None,
        offsetms: int | None = None,
        skipms: int | None = None,
    ) -> Playback:
        """`POST /channels/{id}/play[/{playbackId}]`: media like ``sound:hello-world`` (several play in turn)."""
        return await self._play(f"/channels/{_segment(channel_id)}", media, playback_id, lang, offsetms, skipms, None)

    async def _play(
        self,
        target: str,
        media: str | Sequence[str],
        playback_id: str | None,
        lang: str | None,
        offsetms: int | None,
        skipms: int | None,
        announcer_format: str | None,
    ) -> Playback:
        media_list = ",".join([media] if isinstance(media, str) else media)
        path = f"{target}/play" + (f"/{_segment(playback_id)}" if playback_id else "")
        params: Params = {"media": media_list, "lang": lang, "offsetms": offsetms, "skipms": skipms}
        if announcer_format is not None:
            params = {**params, "announcer_format": announcer_format}
        return _parse(Playback.from_json, await self._request("POST", path, params=params), "Playback")

    async def get_playback(self, playback_id: str) -> Playback:
        """`GET /playbacks/{id}`; `NotFound` when it has finished."""
        body = await self._request("GET", f"/playbacks/{_segment(playback_id)}", retry=_Retry.READ)
        return _parse(Playback.from_json, body, "Playback")

    async def stop_playback(self, playback_id: str) -> None:
        """`DELETE /playbacks/{id}`."""
        await self._request("DELETE", f"/playbacks/{_segment(playback_id)}", retry=_Retry.DELETE)

    async def record_channel(
        self,
        channel_id: str,
        name: str,
        *,
        format: str = "wav",
        max_duration_seconds: int = 0,
        max_silence_seconds: int = 0,
        if_exists: str = "fail",
        beep: bool = False,
        terminate_on: str = "none",
    ) -> LiveRecording:
        """`POST /channels/{id}/record`. Asterisk refuses this for a channel already in a bridge:
        record the bridge (`record_bridge`) or a snoop channel instead."""
        params: Params = {
            "name": name,
            "format": format,
            "maxDurationSeconds": max_duration_seconds,
            "maxSilenceSeconds": max_silence_seconds,
            "ifExists": if_exists,
            "beep": beep,
            "terminateOn": terminate_on,
        }
        body = await self._request("POST", f"/channels/{_segment(channel_id)}/record", params=params)
        return _parse(LiveRecording.from_json, body, "LiveRecording")

    async def snoop(
        self,
        channel_id: str,
        snoop_id: str,
        *,
        spy: str = "none",
        whisper: str = "none",
        app: str | None = None,
        app_args: Sequence[str] | None = None,
    ) -> Channel | None:
        """`POST /channels/{id}/snoop/{snoopId}`: a channel that hears (`spy`) and/or speaks
        into (`whisper`) `channel_id`, each ``none|in|out|both``. Listen = spy both; coach =
        whisper out; barge = whisper both. Retried like `originate`."""
        for name, value in (("spy", spy), ("whisper", whisper)):
            if value not in {"none", "in", "out", "both"}:
                raise ValueError(f"snoop {name} must be none, in, out or both, got {value!r}")
        body = await self._request(
            "POST",
            f"/channels/{_segment(channel_id)}/snoop/{_segment(snoop_id)}",
            params={"spy": spy, "whisper": whisper, "app": app or self.config.app, "appArgs": _app_args(app_args)},
            retry=_Retry.CREATE_WITH_ID,
        )
        return await self._created(body, snoop_id)

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        """`POST /channels/{id}/continue`: leave Stasis and go on in the dialplan (e.g. to AMD)."""
        await self._request(
            "POST",
            f"/channels/{_segment(channel_id)}/continue",
            params={"context": context, "extension": extension, "priority": priority, "label": label},
        )

    async def redirect(self, channel_id: str, endpoint: str) -> None:
        """`POST /channels/{id}/redirect`: redirect the channel to another endpoint (SIP 302 / REFER)."""
        await self._request("POST", f"/channels/{_segment(channel_id)}/redirect", params={"endpoint": endpoint})

    async def get_variable(self, channel_id: str, variable: str) -> str:
        """`GET /channels/{id}/variable` (also dialplan functions, e.g. ``CHANNEL(pjsip,call-id)``)."""
        body = await self._request(
            "GET", f"/channels/{_segment(channel_id)}/variable", params={"variable": variable}, retry=_Retry.READ
        )
        return _parse(Variable.from_json, body, "Variable").value

    async def get_global_variable(self, variable: str) -> str:
        """`GET /asterisk/variable`: a global variable (e.g. one set in extensions.conf [globals])."""
        body = await self._request("GET", "/asterisk/variable", params={"variable": variable}, retry=_Retry.READ)
        return _parse(Variable.from_json, body, "Variable").value

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        """`POST /channels/{id}/variable`."""
        await self._request(
            "POST",
            f"/channels/{_segment(channel_id)}/variable",
            params={"variable": variable, "value": value},
            retry=_Retry.READ,  # setting the same value twice is harmless
        )

    async def send_dtmf(self, channel_id: str, dtmf: str, *, between_ms: int = 100, duration_ms: int = 100) -> None:
        """`POST /channels/{id}/dtmf`."""
        await self._request(
            "POST",
            f"/channels/{_segment(channel_id)}/dtmf",
            params={"dtmf": dtmf, "between": between_ms, "duration": duration_ms},
        )

    # -- bridges -------------------------------------------------------------------------------

    async def list_bridges(self) -> tuple[Bridge, ...]:
        """`GET /bridges`."""
        return _parse_list(Bridge.from_json, await self._request("GET", "/bridges", retry=_Retry.READ), "Bridge")

    async def get_bridge(self, bridge_id: str) -> Bridge:
        """`GET /bridges/{id}`; `NotFound` when it is gone."""
        body = await self._request("GET", f"/bridges/{_segment(bridge_id)}", retry=_Retry.READ)
        return _parse(Bridge.from_json, body, "Bridge")

    async def create_bridge(self, bridge_id: str, *, bridge_type: str = DEFAULT_BRIDGE_TYPE, name: str | None = None) -> Bridge:
        """`POST /bridges/{id}` with `type` (``mixing,dtmf_events`` by default, in that order).

        Retried like `originate`; a 409 on a retry means the first attempt made it.
        """
        body = await self._request(
            "POST",
            f"/bridges/{_segment(bridge_id)}",
            params={"type": bridge_type, "name": name},
            retry=_Retry.CREATE_WITH_ID,
        )
        if body is _ALREADY_DONE:
            return await self.get_bridge(bridge_id)
        return _parse(Bridge.from_json, body, "Bridge")

    async def add_channel(
        self,
        bridge_id: str,
        channel_ids: str | Sequence[str],
        *,
        role: str | None = None,
        absorb_dtmf: bool = False,
        mute: bool = False,
        inhibit_connected_line_updates: bool = False,
    ) -> None:
        """`POST /bridges/{id}/addChannel`. A channel in another Stasis bridge leaves it (no atomic move)."""
        channels = ",".join([channel_ids] if isinstance(channel_ids, str) else channel_ids)
        await self._request(
            "POST",
            f"/bridges/{_segment(bridge_id)}/addChannel",
            params={
                "channel": channels,
                "role": role,
                "absorbDTMF": absorb_dtmf,
                "mute": mute,
                "inhibitConnectedLineUpdates": inhibit_connected_line_updates,
            },
        )

    async def remove_channel(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        """`POST /bridges/{id}/removeChannel`."""
        channels = ",".join([channel_ids] if isinstance(channel_ids, str) else channel_ids)
        await self._request("POST", f"/bridges/{_segment(bridge_id)}/removeChannel", params={"channel": channels})

    async def destroy_bridge(self, bridge_id: str) -> None:
        """`DELETE /bridges/{id}`; the channels in it stay up."""
        await self._request("DELETE", f"/bridges/{_segment(bridge_id)}", retry=_Retry.DELETE)

    async def start_bridge_moh(self, bridge_id: str, *, moh_class: str = "default") -> None:
        """`POST /bridges/{id}/moh`: music on hold to everyone in the bridge (until stopped)."""
        await self._request("POST", f"/bridges/{_segment(bridge_id)}/moh", params={"mohClass": moh_class})

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        """`DELETE /bridges/{id}/moh`."""
        await self._request("DELETE", f"/bridges/{_segment(bridge_id)}/moh", retry=_Retry.DELETE)

    async def play_bridge(
        self,
        bridge_id: str,
        media: str | Sequence[str],
        *,
        playback_id: str | None = None,
        lang: str | None = None,
        announcer_format: str | None = None,
    ) -> Playback:
        """`POST /bridges/{id}/play[/{playbackId}]`: play to everyone in the bridge."""
        return await self._play(f"/bridges/{_segment(bridge_id)}", media, playback_id, lang, None, None, announcer_format)

    async def record_bridge(
        self,
        bridge_id: str,
        name: str,
        *,
        format: str = "wav",
        max_duration_seconds: int = 0,
        max_silence_seconds: int = 0,
        if_exists: str = "fail",
        beep: bool = False,
        terminate_on: str = "none",
    ) -> LiveRecording:
        """`POST /bridges/{id}/record`: one mixed recording of everyone in the bridge."""
        params: Params = {
            "name": name,
            "format": format,
            "maxDurationSeconds": max_duration_seconds,
            "maxSilenceSeconds": max_silence_seconds,
            "ifExists": if_exists,
            "beep": beep,
            "terminateOn": terminate_on,
        }
        body = await self._request("POST", f"/bridges/{_segment(bridge_id)}/record", params=params)
        return _parse(LiveRecording.from_json, body, "LiveRecording")

    # -- recordings ----------------------------------------------------------------------------

    async def get_live_recording(self, name: str) -> LiveRecording:
        """`GET /recordings/live/{name}`."""
        body = await self._request("GET", f"/recordings/live/{_segment(name)}", retry=_Retry.READ)
        return _parse(LiveRecording.from_json, body, "LiveRecording")

    async def stop_recording(self, name: str) -> None:
        """`POST /recordings/live/{name}/stop`: stop and keep the file (it becomes a stored recording)."""
        await self._request("POST", f"/recordings/live/{_segment(name)}/stop")

    async def cancel_recording(self, name: str) -> None:
        """`DELETE /recordings/live/{name}`: stop and discard the file."""
        await self._request("DELETE", f"/recordings/live/{_segment(name)}", retry=_Retry.DELETE)

    async def list_stored_recordings(self) -> tuple[StoredRecording, ...]:
        """`GET /recordings/stored`."""
        body = await self._request("GET", "/recordings/stored", retry=_Retry.READ)
        return _parse_list(StoredRecording.from_json, body, "StoredRecording")

    async def get_stored_recording(self, name: str) -> StoredRecording:
        """`GET /recordings/stored/{name}`."""
        body = await self._request("GET", f"/recordings/stored/{_segment(name)}", retry=_Retry.READ)
        return _parse(StoredRecording.from_json, body, "StoredRecording")

    async def copy_stored_recording(self, name: str, destination: str) -> StoredRecording:
        """`POST /recordings/stored/{name}/copy`."""
        body = await self._request(
            "POST", f"/recordings/stored/{_segment(name)}/copy", params={"destinationRecordingName": destination}
        )
        return _parse(StoredRecording.from_json, body, "StoredRecording")

    async def delete_stored_recording(self, name: str) -> None:
        """`DELETE /recordings/stored/{name}`."""
        await self._request("DELETE", f"/recordings/stored/{_segment(name)}", retry=_Retry.DELETE)

    async def stored_recording_file(self, name: str) -> bytes:
        """`GET /recordings/stored/{name}/file`: the audio bytes."""
        path = f"/recordings/stored/{_segment(name)}/file"
        url = self.config.url.rstrip("/") + path
        try:
            async with self.session.get(url, timeout=self._timeout) as response:
                if response.status >= 400:
                    text = await response.text()
                    raise request_error("GET", path, response.status, _error_message(text, response.reason))
                return await response.read()
        except TimeoutError as error:
            raise AriTimeout(f"GET {path}: no answer within {self.config.request_timeout} s") from error
        except aiohttp.ClientError as error:
            raise AriUnavailable(f"GET {path}: {type(error).__name__}: {error}") from error

    # -- endpoints -----------------------------------------------------------------------------

    async def list_endpoints(self) -> tuple[Endpoint, ...]:
        """`GET /endpoints`."""
        return _parse_list(Endpoint.from_json, await self._request("GET", "/endpoints", retry=_Retry.READ), "Endpoint")

    async def get_endpoint(self, technology: str, resource: str) -> Endpoint:
        """`GET /endpoints/{tech}/{resource}`; `NotFound` when no such endpoint is configured."""
        path = f"/endpoints/{_segment(technology)}/{_segment(resource)}"
        return _parse(Endpoint.from_json, await self._request("GET", path, retry=_Retry.READ), "Endpoint")

    async def send_message(
        self, to: str, from_: str, body: str, *, variables: Mapping[str, str] | None = None
    ) -> None:
        """`PUT /endpoints/sendMessage`: a SIP MESSAGE, e.g. to ``pjsip:agent1001``."""
        await self._request(
            "PUT",
            "/endpoints/sendMessage",
            params={"to": to, "from": from_, "body": body},
            body={"variables": dict(variables)} if variables else None,
        )


def _error_message(text: str, reason: str | None) -> str:
    # ARI errors are {"message": "..."}; fall back to the HTTP reason phrase.
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:200] or (reason or "")
    if isinstance(decoded, Mapping) and isinstance(decoded.get("message"), str):
        return str(decoded["message"])
    return text.strip()[:200]
