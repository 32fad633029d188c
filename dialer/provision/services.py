"""PostgreSQL and Redis: use the ones at the configured addresses, or install and start local ones.

A server is installed from the distribution's packages and started only when the configured
address is the local default one (127.0.0.1 on the standard port) and nothing answers there;
any other address that does not answer is the user's to fix, and we say so in one sentence.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from dialer.provision.asterisk import ProvisionError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def postgres_answers(dsn: str, timeout: float = 3.0) -> bool:
    """True when a PostgreSQL server accepts our login at `dsn` (the database may not exist yet)."""

    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(dsn, timeout=timeout)
        except asyncpg.InvalidCatalogNameError:
            return True
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    host, port = _host_port(url, 6379)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def _apt_install(*packages: str, say: Callable[[str], None]) -> None:
    if os.geteuid() != 0:
        raise ProvisionError(f"Installing {', '.join(packages)} needs root: run as root (or with sudo).")
    if shutil.which("apt-get") is None:
        raise ProvisionError(f"Install {', '.join(packages)} with your system's package manager, then run again.")
    say(f"Installing {', '.join(packages)} from the distribution's packages...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Wait for another package run (an unattended upgrade, a second bootstrap) to finish rather
    # than fail on dpkg's lock.
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=900"]
    subprocess.run([*apt, "update", "-q"], env=env, capture_output=True, check=False)
    result = subprocess.run([*apt, "install", "-y", "-q", *packages], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ProvisionError(f"apt-get install {' '.join(packages)} failed: {result.stderr.strip()[-300:]}")


def _wait(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False


def ensure_postgres(dsn: str, say: Callable[[str], None] = print) -> None:
    """Make sure PostgreSQL answers at `dsn`, installing and starting a local one if that is ours to do."""
    if postgres_answers(dsn):
        return
    host, port = _host_port(dsn, 5432)
    if host not in LOOPBACK or port != 5432:
        raise ProvisionError(
            f"PostgreSQL at {host}:{port} does not answer: start it, or set DIALER_PG_DSN to one that does."
        )
    if shutil.which("pg_ctlcluster") is None:
        _apt_install("postgresql", say=say)
        _trust_loopback_for_postgres_user()
    say("Starting PostgreSQL...")
    for version_dir in sorted(glob.glob("/etc/postgresql/*/main")):
        version = Path(version_dir).parent.name
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True,
            check=False,
        )
    if not _wait(lambda: postgres_answers(dsn), 30):
        raise ProvisionError(
            f"PostgreSQL at {host}:{port} still does not accept our login: check that the server runs and "
            "that pg_hba.conf lets this user in, or set DIALER_PG_DSN."
        )


def _trust_loopback_for_postgres_user() -> None:
    """A cluster we just installed lets `postgres` in over 127.0.0.1 without a password (development)."""
    for hba in glob.glob("/etc/postgresql/*/main/pg_hba.conf"):
        text = Path(hba).read_text()
        line = "host all postgres 127.0.0.1/32 trust  # added by dialer-engine for local development\n"
        if line not in text:
            Path(hba).write_text(line + text)


def ensure_redis(url: str, say: Callable[[str], None] = print) -> None:
    """Make sure Redis answers at `url`, installing and starting a local one if that is ours to do."""
    if redis_answers(url):
        return
    host, port = _host_port(url, 6379)
    if host not in LOOPBACK or port != 6379:
        raise ProvisionError(f"Redis at {host}:{port} does not answer: start it, or set DIALER_REDIS_URL to one that does.")
    if shutil.which("redis-server") is None:
        _apt_install("redis-server", say=say)
    say("Starting Redis...")
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379"],
        capture_output=True,
        check=False,
    )
    if not _wait(lambda: redis_answers(url), 15):
        raise ProvisionError(f"Redis at {host}:{port} did not start: see the Redis log, or set DIALER_REDIS_URL.")
