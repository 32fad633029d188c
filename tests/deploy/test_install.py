"""`dialer config init`, `dialer install --dry-run` and `--prefix`, and what a start refuses: the
real command in a subprocess, as an administrator runs it."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def dialer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dialer", *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=50, check=False)


def one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("dialer: ")]
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("dialer: ")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "dialer.toml"
    result = dialer("config", "init", "--path", str(path), env={"DIALER_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    # Paths of this test's own, so --prefix can apply them for real.
    text = path.read_text().replace("/var/lib/dialer", str(tmp_path / "var/lib/dialer")).replace(
        "/var/cache/dialer", str(tmp_path / "var/cache/dialer"))
    path.write_text(text)
    return path


def test_config_init_writes_a_private_file_and_a_generated_ari_password(config: Path) -> None:
    assert mode(config) == 0o600
    secret = config.parent / "secrets" / "ari-password"
    assert mode(secret) == 0o600 and mode(secret.parent) == 0o700
    assert len(secret.read_text().strip()) >= 24
    assert 'mode = "production"' in config.read_text()
    assert one_sentence(dialer("config", "init", "--path", str(config))) == (
        f"{config} exists: edit it, or pass --force to replace it.")


def test_install_dry_run_shows_units_user_and_phi_permissions(config: Path, tmp_path: Path) -> None:
    result = dialer("install", "--dry-run", "--config", str(config), "--dialer", "/opt/dialer/.venv/bin/dialer")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("dialer install --dry-run: nothing is changed\n")
    assert re.search(r"^user     dialer: (exists|create \(useradd --system --user-group --home-dir /var/lib/dialer "
                     r"--no-create-home --shell /usr/sbin/nologin --comment dialer-engine dialer\))$", out, re.M)
    state = tmp_path / "var/lib/dialer"
    for folder in ("state", "recordings", "keys"):
        assert f"folder   {state / folder}  0700 dialer:dialer, files inside 0600 and folders 0700" in out
    assert f"folder   {config.parent / 'secrets'}  0700 dialer:dialer" in out
    # The configuration is root's; the service reads it (its secrets are in files of its own).
    assert f"folder   {config.parent}  0750 root:dialer" in out and f"mode     {config}  0640 root:dialer" in out
    # dialer serve: its own user, the config, drained on stop, restarted on failure.
    unit = _file(out, "/etc/systemd/system/dialer.service")
    assert "User=dialer" in unit and f"Environment=DIALER_CONFIG={config}" in unit
    assert "ExecStart=/opt/dialer/.venv/bin/dialer serve --drain-seconds 120" in unit
    assert "TimeoutStopSec=180" in unit and "Restart=on-failure" in unit and "UMask=0077" in unit
    assert "After=network-online.target postgresql.service redis-server.service dialer-asterisk.service" in unit
    # Asterisk: rendered and run in the foreground; stopped gracefully (calls that are up end).
    asterisk = _file(out, "/etc/systemd/system/dialer-asterisk.service")
    assert "ExecStart=/opt/dialer/.venv/bin/dialer asterisk run" in asterisk
    assert "ExecStop=/opt/dialer/.venv/bin/dialer asterisk stop --gracefully --timeout 3600" in asterisk
    rotate = _file(out, "/etc/logrotate.d/dialer")
    assert "/var/lib/dialer/instances/prod/log/*.log {" in rotate and "copytruncate" in rotate
    jail = _file(out, "/etc/fail2ban/jail.d/dialer.conf")
    assert "filter = asterisk" in jail and "security.log" in jail and "port = 5060,5061,8089" in jail
    assert "run      systemctl daemon-reload" in out
    assert "run      systemctl enable dialer-asterisk.service dialer.service" in out
    # Nothing was written.
    assert not (tmp_path / "var").exists()


def _file(out: str, path: str) -> str:
    match = re.search(rf"^file     {re.escape(path)}  0644 root:root\n((?:  \| .*\n?)+)", out, re.M)
    assert match, f"{path} not in the plan"
    return "\n".join(line[4:] for line in match.group(1).splitlines())


def test_install_with_a_prefix_writes_the_files_and_makes_phi_private(config: Path, tmp_path: Path) -> None:
    keys = tmp_path / "var/lib/dialer/keys"
    keys.mkdir(parents=True, mode=0o755)
    (keys / "old.key").write_bytes(b"k" * 32)
    (keys / "old.key").chmod(0o644)
    root = tmp_path / "root"
    result = dialer("install", "--config", str(config), "--prefix", str(root), "--user", "root")
    assert result.returncode == 0, result.stderr
    assert (root / "etc/systemd/system/dialer.service").read_text().count("ExecStart=") == 1
    assert mode(root / "etc/systemd/system/dialer-asterisk.service") == 0o644
    prefixed = root / keys.relative_to("/")
    assert mode(prefixed) == 0o700
    assert mode(root / (tmp_path / "var/lib/dialer/recordings").relative_to("/")) == 0o700
    # The real folder is left alone (prefix): the modes are applied under the prefix only.
    assert mode(keys / "old.key") == 0o644


def test_install_needs_a_configuration(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    assert one_sentence(dialer("install", "--dry-run", "--config", str(missing))) == (
        f"No configuration at {missing}: write one with 'dialer config init --path {missing}', edit it, then run "
        "'dialer install' again.")


# ---- refused outside development, in one sentence ------------------------------------------------
def test_serve_refuses_the_default_ari_password_in_production(tmp_path: Path) -> None:
    env = {"DIALER_CONFIG": "", "DIALER_MODE": "production", "DIALER_ARI_PASSWORD": ""}
    assert one_sentence(dialer("serve", env=env)).startswith(
        "ARI still has a default or short password: put a secret of your own (12 characters or more) in a file "
        "and set [ari] password_file (or DIALER_ARI_PASSWORD_FILE).")


def test_asterisk_refuses_plain_sip_on_a_public_address_in_production(tmp_path: Path) -> None:
    password = tmp_path / "ari"
    password.write_text("a-long-enough-secret\n")
    env = {"DIALER_CONFIG": "", "DIALER_MODE": "production", "DIALER_ARI_PASSWORD_FILE": str(password),
           "DIALER_SIP_BIND": "0.0.0.0"}
    for command in (["asterisk", "start"], ["asterisk", "run"], ["stack", "up"], ["serve"]):
        assert one_sentence(dialer(*command, env=env)).startswith(
            "SIP would listen on public address 0.0.0.0 without TLS: set [sip] tls = true with [tls] cert_file and "
            "key_file, or bind SIP to a private address."), command


def test_config_check_reports_every_problem_and_masks_secrets(tmp_path: Path) -> None:
    password = tmp_path / "ari"
    password.write_text("a-long-enough-secret\n")
    env = {"DIALER_CONFIG": "", "DIALER_ARI_PASSWORD_FILE": str(password),
           "DIALER_PG_DSN": "postgresql://dialer:pg-secret@127.0.0.1:5432/dialer"}
    result = dialer("config", "check", "--no-network", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a-long-enough-secret" not in result.stdout and "pg-secret" not in result.stdout
    assert re.search(r"ari_password\s+\*{6}\s+DIALER_ARI_PASSWORD_FILE", result.stdout)
    assert re.search(r"pg_dsn\s+postgresql://dialer:\*{6}@127\.0\.0\.1:5432/dialer\s+DIALER_PG_DSN", result.stdout)
    assert result.stdout.rstrip().endswith("The configuration is usable.")
