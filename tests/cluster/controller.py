"""A `dialer serve` child process for the two-controller tests: the command's own coroutine
(`dialer.commands.serve.serve`, lease and all) with its settings from the environment, and the
compliance gate's clock fixed inside every calling window (`GATE_NOW`), as in-process tests do.

Run as `python -m tests.cluster.controller`; `Controller` (a `tests.support.child_dialer.ChildDialer`)
starts, kills and stops one (tests, scripts/bench_failover.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from dialer.commands.serve import serve
from dialer.logs import configure_logging
from dialer.provision.ports import free_local_port
from dialer.settings import from_environment
from tests.campaign.conftest import GATE_NOW
from tests.support.child_dialer import ChildDialer


class Controller(ChildDialer):
    """One `dialer serve` child process named `name` (its own port, state, cache and log in
    `workdir`). `spawn()` starts it without waiting: a standby controller does not answer."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        super().__init__({**env, "DIALER_CONTROLLER_NAME": name, "DIALER_HTTP_PORT": str(free_local_port()),
                          "DIALER_STATE_DIR": str(workdir / f"state-{name}"),
                          "DIALER_CACHE_DIR": str(workdir / f"cache-{name}")},
                         workdir / f"controller-{name}.log", module="tests.cluster.controller")


def main() -> None:
    settings = from_environment()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings, 5.0, gate_clock=lambda: GATE_NOW))


if __name__ == "__main__":
    main()
