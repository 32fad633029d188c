"""A `dialer serve` child process for the two-controller tests: the command's own coroutine
(`dialer.commands.serve.serve`, lease and all) with its settings from the environment, and the
compliance gate's clock fixed inside every calling window (`GATE_NOW`), as in-process tests do.

Run as `python -m tests.cluster.controller`; `Controller` starts and stops one (tests,
scripts/bench_failover.py).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from dialer.commands.serve import serve
from dialer.logs import configure_logging
from dialer.provision.ports import free_local_port
from dialer.settings import from_environment
from tests.campaign.conftest import GATE_NOW

ROOT = Path(__file__).resolve().parents[2]


class Controller:
    """One `dialer serve` child process and its log."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = free_local_port()
        self.log = workdir / f"controller-{name}.log"
        self.env = {**env, "DIALER_CONTROLLER_NAME": name, "DIALER_HTTP_PORT": str(self.port),
                    "DIALER_STATE_DIR": str(workdir / f"state-{name}"), "DIALER_CACHE_DIR": str(workdir / f"cache-{name}")}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "tests.cluster.controller"], cwd=ROOT,
                                            env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no drain, no lease released (a crash, a host gone)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def main() -> None:
    settings = from_environment()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings, 5.0, gate_clock=lambda: GATE_NOW))


if __name__ == "__main__":
    main()
