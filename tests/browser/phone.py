"""Drive `dialer/web/static/softphone.js` in a page, for browser tests of the phone and the consoles.

`BrowserPhone(page)` talks to the `window.phone` a page created (phone-check.html's
`startPhone`, or a console that exposes its phone the same way).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from playwright.async_api import Page

from dialer.provision.credentials import SipLogin


class BrowserPhone:
    """The softphone in one page: start it, wait for its states, act, read its WebRTC stats."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def open_check_page(self, url: str) -> None:
        await self.page.goto(url)
        await self.page.wait_for_function("typeof window.startPhone === 'function'")

    async def start(self, login: SipLogin, *, auto_answer: bool = False) -> dict[str, Any]:
        """Start the page's phone with `login` (a browser endpoint's credentials)."""
        config = {
            "wsUrl": login.ws_url,
            "sipUri": login.sip_uri,
            "username": login.username,
            "password": login.password,
            "autoAnswer": auto_answer,
        }
        status: dict[str, Any] = await self.page.evaluate("(config) => window.startPhone(config)", config)
        return status

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = await self.page.evaluate("() => window.phone.status()")
        return status

    async def wait_for(self, key: str, *values: str, within: float = 10.0) -> dict[str, Any]:
        """Wait until status()[key] is one of `values`; AssertionError with the last status if not."""
        deadline = time.monotonic() + within
        while True:
            status = await self.status()
            if status[key] in values:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"phone {key} is {status[key]!r}, not {values} after {within} s: {status}")
            await asyncio.sleep(0.1)

    async def answer(self) -> bool:
        return bool(await self.page.evaluate("() => window.phone.answer()"))

    async def hang_up(self) -> bool:
        return bool(await self.page.evaluate("() => window.phone.hangUp()"))

    async def mute(self, muted: bool) -> None:
        await self.page.evaluate("(muted) => window.phone.mute(muted)", muted)

    async def hold(self, held: bool) -> bool:
        return bool(await self.page.evaluate("(held) => window.phone.hold(held)", held))

    async def send_dtmf(self, digits: str) -> bool:
        return bool(await self.page.evaluate("(digits) => window.phone.sendDtmf(digits)", digits))

    async def stats(self) -> dict[str, Any] | None:
        """softphone.js `stats()`: inbound/outbound audio, codec, ICE pair (None without a call)."""
        stats: dict[str, Any] | None = await self.page.evaluate("() => window.phone.stats()")
        return stats

    async def stop(self) -> None:
        await self.page.evaluate("() => window.phone && window.phone.stop()")
