"""Bad settings and missing prerequisites stop with one clear sentence and a non-zero exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DIALER = [sys.executable, "-m", "dialer"]


def _run(args: list[str], env: dict[str, str], user: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [*DIALER, *args]
    if user is not None:
        command = ["setpriv", "--reuid", user, "--regid", user, "--clear-groups", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def _one_clear_sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("dialer: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.timeout(60)
def test_unreachable_postgres_dsn_says_what_to_do() -> None:
    env = {**os.environ, "DIALER_PG_DSN": "postgresql://postgres@127.0.0.1:1/dialer"}
    message = _one_clear_sentence(_run(["stack", "up", "--no-asterisk"], env))
    assert "PostgreSQL at 127.0.0.1:1 does not answer" in message and "DIALER_PG_DSN" in message


@pytest.mark.timeout(60)
def test_unreachable_redis_url_says_what_to_do() -> None:
    env = {**os.environ, "DIALER_REDIS_URL": "redis://127.0.0.1:1/0"}
    message = _one_clear_sentence(_run(["stack", "up", "--no-asterisk"], env))
    assert "Redis at 127.0.0.1:1 does not answer" in message and "DIALER_REDIS_URL" in message


@pytest.mark.timeout(60)
def test_missing_debootstrap_says_how_to_install_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("chroot", "mount"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir), "DIALER_CACHE_DIR": str(tmp_path / "cache")}
    message = _one_clear_sentence(_run(["asterisk", "build"], env))
    assert "debootstrap is not installed" in message and "apt-get install" in message


@pytest.mark.timeout(60)
def test_non_root_user_without_asterisk_is_told_to_use_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dialer.cli import main
    from dialer.provision import asterisk

    monkeypatch.setenv("DIALER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(asterisk, "find_system_install", lambda: None)
    monkeypatch.setattr(asterisk.os, "geteuid", lambda: 1000)
    assert main(["asterisk", "build"]) != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("dialer: ")]
    assert len(lines) == 1 and "needs root" in lines[0] and "Asterisk 22" in lines[0]


@pytest.mark.timeout(60)
def test_bad_port_setting_is_named() -> None:
    env = {**os.environ, "DIALER_ARI_PORT": "eighty"}
    message = _one_clear_sentence(_run(["stack", "status"], env))
    assert "DIALER_ARI_PORT" in message
