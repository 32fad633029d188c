"""`dialer serve` in a child process, for tests that kill it: `ChildDialer` runs a module
(`tests/controller/serve_child.py` by default; the two-controller tests' `tests/cluster/controller.py`)
and starts, kills and stops it; `api_headers` is a bearer token for its API."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from crm_bridge.store import CrmStore, TokenRole
from dialer.provision.ports import free_local_port
from dialer.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def child_environment(settings: Settings, state_dir: Path, recordings_dir: Path, http_port: int,
                      cache_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DIALER_PG_DSN": settings.pg_dsn,
        "DIALER_REDIS_URL": settings.redis_url,
        "DIALER_REDIS_PREFIX": settings.redis_prefix,
        "DIALER_ARI_PORT": str(settings.ari_port),
        "DIALER_ARI_USER": settings.ari_user,
        "DIALER_ARI_PASSWORD": settings.ari_password,
        "DIALER_ARI_APP": settings.ari_app,
        "DIALER_STATE_DIR": str(state_dir),
        "DIALER_RECORDINGS_DIR": str(recordings_dir),
        "DIALER_HTTP_PORT": str(http_port),
        "DIALER_CACHE_DIR": str(cache_dir),
        # The run's audit key: the shared test database's trail is signed with it, and a dialer
        # refuses to start with a trail signed by a key it does not hold.
        "DIALER_AUDIT_KEYS_DIR": str(settings.audit_keys_dir),
    }


async def api_headers(pg_dsn: str, role: TokenRole, label: str) -> dict[str, str]:
    """The Authorization header of a new API token (`role`) issued in the CRM database."""
    store = await CrmStore.open(pg_dsn)
    try:
        token = (await store.issue_token(role, label=label)).secret
    finally:
        await store.close()
    return {"Authorization": f"Bearer {token}"}


class ChildDialer:
    """One child process running `module` with `env` (its HTTP port in DIALER_HTTP_PORT), its
    output appended to `log`."""

    def __init__(self, env: dict[str, str], log: Path, module: str = "tests.controller.serve_child") -> None:
        self.env = env
        self.log = log
        self.module = module
        self.port = int(env["DIALER_HTTP_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", self.module], env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

    async def start(self, within: float = 90.0) -> None:
        """Start the child and wait until its API answers; a child that never answers is killed, not leaked.

        The bound is generous because the whole suite shares two cores with Asterisk, baresip and Chromium.
        A child that exits early fails at once, and either failure carries the end of the child's log.
        """
        self.spawn()
        retries_left = 3
        try:
            async with asyncio.timeout(within), aiohttp.ClientSession() as session:
                while True:
                    if self.process is not None and self.process.poll() is not None:
                        if "address already in use" in self.log_tail(5).lower() and retries_left:
                            # The free port we were given was taken before the child bound it.
                            retries_left -= 1
                            self.port = free_local_port()
                            self.env["DIALER_HTTP_PORT"] = str(self.port)
                            self.spawn()
                            continue
                        raise AssertionError(f"the child dialer exited with {self.process.returncode}:\n"
                                             + self.log_tail())
                    try:
                        async with session.get(f"{self.url}/v1/health") as response:
                            if response.status == 200:
                                return
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.2)
        except TimeoutError:
            self._kill_quietly()
            raise AssertionError(f"the child dialer did not answer within {within:.0f} s:\n" + self.log_tail()) from None
        except BaseException:
            self._kill_quietly()
            raise

    def text(self) -> str:
        """The whole log so far ("" before the first start)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            return f"(no log: {error})"

    def _kill_quietly(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def kill(self) -> None:
        """SIGKILL: no drain, nothing flushed, nothing hung up, no lease released (a crash, a
        host gone). A child that has already exited is only reaped."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
