"""One call through ARI into the simulated public network, reported by its outcome.

Used by the stack's self-check and by tests of the simulated network. It talks raw ARI
(REST plus the event WebSocket) so it depends on nothing but a running Asterisk.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from dialer.ari.auth import basic_auth_header

# Asterisk hang-up causes (Q.850) the simulated network produces, by name.
CAUSE_NAMES = {
    1: "unallocated",
    16: "normal_clearing",
    17: "busy",
    18: "no_user_response",
    19: "no_answer",
    21: "rejected",
    34: "congestion",
}


@dataclass
class SmokeCall:
    """What happened to one originated call, from the app's events."""

    number: str
    channel_id: str
    answered: bool = False
    cause: int | None = None
    cause_txt: str = ""
    sip_code: int | None = None
    ring_seconds: float | None = None
    talk_seconds: float | None = None
    total_seconds: float = 0.0
    events: list[str] = field(default_factory=list)

    @property
    def cause_name(self) -> str:
        return CAUSE_NAMES.get(self.cause or 0, f"cause_{self.cause}")

    def summary(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "channel_id": self.channel_id,
            "answered": self.answered,
            "hangup_cause": self.cause,
            "hangup_cause_name": self.cause_name,
            "cause_txt": self.cause_txt,
            "sip_code": self.sip_code,
            "ring_seconds": None if self.ring_seconds is None else round(self.ring_seconds, 2),
            "talk_seconds": None if self.talk_seconds is None else round(self.talk_seconds, 2),
            "total_seconds": round(self.total_seconds, 2),
        }


def _sip_code(tech_cause: object) -> int | None:
    try:
        code = int(str(tech_cause))
    except ValueError:
        return None
    return code if code > 0 else None


async def place_calls(
    ari_url: str,
    user: str,
    password: str,
    app: str,
    numbers: list[str],
    *,
    ring_timeout: int = 30,
    hangup_after: float | None = None,
    overall_timeout: float = 120.0,
) -> list[SmokeCall]:
    """Originate each number through the trunk into our app and wait for every channel's end.

    One event WebSocket serves all the calls: a second connection for the same app name would
    take the app over (ApplicationReplaced) and the first would stop receiving events.
    `hangup_after` hangs up that many seconds after answer (None: the far end ends the call).
    """
    outcomes = {f"smoke-{uuid.uuid4().hex[:12]}": SmokeCall(number=n, channel_id="") for n in numbers}
    for channel_id, outcome in outcomes.items():
        outcome.channel_id = channel_id
    started: dict[str, float] = {}
    answered_at: dict[str, float] = {}
    pending = set(outcomes)
    ws_url = ari_url.replace("http://", "ws://") + f"/events?app={app}&subscribeAll=false"
    async with (
        aiohttp.ClientSession(headers=basic_auth_header(user, password)) as session,
        session.ws_connect(ws_url, heartbeat=10) as ws,
        asyncio.TaskGroup() as tasks,
    ):
        for channel_id, outcome in outcomes.items():
            started[channel_id] = time.monotonic()
            async with session.post(
                f"{ari_url}/channels/{channel_id}",
                params={
                    "endpoint": f"PJSIP/{outcome.number}@trunk",
                    "app": app,
                    "appArgs": "smoke",
                    "timeout": str(ring_timeout),
                    "callerId": "Demo Agency <+18885550100>",
                },
            ) as response:
                if response.status >= 300:
                    raise RuntimeError(f"originate failed: HTTP {response.status} {await response.text()}")
        async with asyncio.timeout(overall_timeout):
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                event = json.loads(message.data)
                channel_id = (event.get("channel") or {}).get("id", "")
                outcome_or_none = outcomes.get(channel_id)
                if outcome_or_none is None:
                    continue
                outcome = outcome_or_none
                now = time.monotonic()
                outcome.events.append(event["type"])
                if event["type"] == "StasisStart":
                    answered_at[channel_id] = now
                    outcome.answered = True
                    outcome.ring_seconds = now - started[channel_id]
                    if hangup_after is not None:
                        tasks.create_task(
                            _hangup_later(session, ari_url, channel_id, hangup_after), name=f"hangup-{channel_id}"
                        )
                elif event["type"] == "ChannelDestroyed":
                    outcome.cause = int(event.get("cause", 0))
                    outcome.cause_txt = str(event.get("cause_txt", ""))
                    outcome.sip_code = _sip_code(event.get("tech_cause", ""))
                    outcome.total_seconds = now - started[channel_id]
                    if channel_id in answered_at:
                        outcome.talk_seconds = now - answered_at[channel_id]
                    pending.discard(channel_id)
                    if not pending:
                        break
    return list(outcomes.values())


async def place_call(
    ari_url: str, user: str, password: str, app: str, number: str, **options: Any
) -> SmokeCall:
    """One call; see `place_calls`."""
    (outcome,) = await place_calls(ari_url, user, password, app, [number], **options)
    return outcome


async def _hangup_later(session: aiohttp.ClientSession, ari_url: str, channel_id: str, delay: float) -> None:
    await asyncio.sleep(delay)
    async with session.delete(f"{ari_url}/channels/{channel_id}"):
        pass
