"""Tell the trunk router which carriers Asterisk can reach right now.

Every trunk's AOR is pinged with OPTIONS (`qualify_seconds`); ARI reports the endpoint
`offline` when the carrier stopped answering. `TrunkHealth.run` reads each trunk's state every
few seconds and marks it in the `TrunkRouter`, so dials go to the next trunk in preference order
while a carrier is down (a timeout), and come back when it answers again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog

from dialer.ari.errors import AriError
from dialer.ari.models import Endpoint
from dialer.provision.trunks import TrunkRouter

log = structlog.get_logger(__name__)

POLL_SECONDS = 10.0


class EndpointSource(Protocol):
    async def get_endpoint(self, technology: str, resource: str) -> Endpoint: ...


class TrunkHealth:
    """Polls each trunk's endpoint state over ARI into the router; logs each change once."""

    def __init__(self, ari: EndpointSource, router: TrunkRouter, interval: float = POLL_SECONDS) -> None:
        self.ari = ari
        self.router = router
        self.interval = interval
        self.states: dict[str, str] = {}

    async def check(self) -> None:
        for trunk in self.router.trunks:
            if not trunk.qualify_seconds:
                continue  # not pinged: Asterisk cannot tell, so the trunk is always tried
            try:
                state = (await self.ari.get_endpoint("PJSIP", trunk.endpoint)).state or "unknown"
            except AriError as error:
                # ARI down (the stream reconnects) or the trunk renamed: keep it as it was.
                log.debug("trunk_state_unreadable", trunk=trunk.name, error=str(error))
                continue
            reachable = state != "offline"
            if self.states.get(trunk.name) != state:
                (log.info if reachable else log.error)("trunk_state", trunk=trunk.name, state=state)
                self.states[trunk.name] = state
            self.router.set_reachable(trunk.endpoint, reachable, time.time())

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)
