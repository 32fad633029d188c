"""`dialer serve` for the SIGKILL test: the same services, with the gate's clock inside every
calling window so the test does not depend on the time of day it runs at."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from dialer.click_to_call.machine import CallTimeouts
from dialer.serve import dialer_services
from dialer.settings import from_environment
from tests.controller.conftest import GATE_NOW, mark_lists_fresh


async def main() -> None:
    settings = from_environment()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=8.0)) as services:
        await mark_lists_fresh(services)
        runner = web.AppRunner(services.app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        print("ready", flush=True)
        await stop.wait()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
