"""A CRM's webhook endpoint for the tests: a real aiohttp server on a local port that keeps what
it received (headers and raw body), can go down (its port closed) and come back on the same port,
and checks signatures with the very code docs/webhooks.md gives."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from dialer.provision.ports import free_local_port

DOCS = Path(__file__).resolve().parents[1] / "docs" / "webhooks.md"


def documented_check() -> Callable[[str, dict[str, str], bytes], bool]:
    """`verify_webhook` as docs/webhooks.md writes it (the block after `<!-- webhook-check -->`)."""
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"<!-- webhook-check -->\s*```python\n(.*?)```", text, re.S)
    assert found, "docs/webhooks.md has no webhook-check block"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), str(DOCS), "exec"), namespace)
    check: Callable[[str, dict[str, str], bytes], bool] = namespace["verify_webhook"]
    return check


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    port: int = field(default_factory=free_local_port)
    received: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        self.arrived.set()
        return web.Response(status=204)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def of_type(self, event_type: str) -> list[Received]:
        return [item for item in self.received if item.message["type"] == event_type]

    async def wait_for(self, predicate: Callable[[], bool], within: float, what: str) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), 0.5)
                except TimeoutError:
                    pass
        assert predicate(), what
