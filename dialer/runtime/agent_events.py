"""Agents' event streams: screen pops and call state changes, fanned out to their WebSockets."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

QUEUE_LIMIT = 256


class AgentEventHub:
    """Publish to an agent; every open WebSocket of that agent gets the message.

    A subscriber that cannot keep up loses its oldest messages rather than slowing the
    controller: call state is also in the CRM, so a console can always re-read it.
    """

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def publish(self, agent_id: str, message: dict[str, Any]) -> None:
        for queue in self._subscribers.get(agent_id, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self, agent_id: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribers[agent_id].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[agent_id].discard(queue)
            if not self._subscribers[agent_id]:
                del self._subscribers[agent_id]

    def subscribers(self, agent_id: str) -> int:
        return len(self._subscribers.get(agent_id, ()))
