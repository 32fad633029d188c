"""A `dialer serve` child process for the two-controller tests: the command's own coroutine
(`dialer.commands.serve.serve`, lease and all) with its settings from the environment, and the
compliance gate's clock fixed inside every calling window (`GATE_NOW`), as in-process tests do.

Run as `python -m tests.cluster.controller`.
"""

from __future__ import annotations

import asyncio

from dialer.commands.serve import serve
from dialer.logs import configure_logging
from dialer.settings import from_environment
from tests.campaign.conftest import GATE_NOW


def main() -> None:
    settings = from_environment()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings, 5.0, gate_clock=lambda: GATE_NOW))


if __name__ == "__main__":
    main()
