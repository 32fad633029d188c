"""`dialer install [--dry-run]`: run the dialer as a service on this server.

What it sets up, from the configuration file (`dialer config init` writes one):

* a dedicated system user (`dialer`) that runs `dialer serve`; Asterisk's unit runs as root only
  to enter its cached root (chroot) and drops to the `asterisk` user itself;
* the folders holding PHI and secrets, owned by that user, 0700 (files 0600): the state (outbox,
  phones' SIP credentials), the recordings archive, the recordings keyring, the secrets;
* two systemd units: `dialer-asterisk.service` (the project's Asterisk, from the system package
  or the cached root) and `dialer.service` (`dialer serve`), each restarted on failure. Stopping
  `dialer.service` drains: live calls finish (up to `--drain-seconds`), then the outbox is
  flushed; Asterisk's unit stops gracefully (no new calls, the ones up finish). Restarting the
  dialer leaves Asterisk, and so the calls' media, untouched;
* log rotation for Asterisk's logs (the dialer logs to the journal), and a fail2ban jail on
  Asterisk's security log (failed registrations and bad passwords lock the address out).

`--dry-run` prints every step and file and changes nothing. `--prefix DIR` writes the files
under DIR instead of / and skips the user and systemctl (for packaging, and for tests).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dialer.cli import UserError
from dialer.provision.asterisk import find_system_install
from dialer.settings import DEFAULT_CONFIG_FILE, Settings, from_environment

SERVICE_USER = "dialer"
UNITS_DIR = Path("/etc/systemd/system")
# Live calls are given this long to end when the dialer stops; systemd waits a little longer.
DRAIN_SECONDS = 120
# Asterisk's graceful stop waits for the calls that are up (an agent's call rarely lasts an hour).
ASTERISK_STOP_SECONDS = 3600


@dataclass(frozen=True)
class Folder:
    path: Path
    mode: int
    owner: str
    fix_files: bool = False  # PHI: existing files made 0600 and folders 0700 too
    group: str = ""  # empty: the owner's group


@dataclass(frozen=True)
class Permission:
    """An existing file's mode and owner (the configuration file: root's, readable by the service)."""

    path: Path
    mode: int
    owner: str
    group: str


@dataclass(frozen=True)
class File:
    path: Path
    text: str
    mode: int = 0o644
    owner: str = "root"


@dataclass
class Plan:
    user: str
    folders: list[Folder] = field(default_factory=list)
    files: list[File] = field(default_factory=list)
    permissions: list[Permission] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)


def asterisk_log_dir(settings: Settings) -> PurePosixPath:
    """Where the instance's Asterisk writes its logs, as the host sees them."""
    if find_system_install() is not None:
        return PurePosixPath(str(settings.cache_dir)) / "instances" / settings.instance / "log"
    return PurePosixPath(str(settings.asterisk_root)) / "var/lib/dialer/instances" / settings.instance / "log"


def dialer_unit(dialer: Path, config: Path, settings: Settings, user: str) -> str:
    writable = sorted({str(settings.state_dir), str(settings.recordings_dir), str(settings.recording_keys_dir),
                       str(settings.sip_credentials_file.parent), str(settings.cache_dir)})
    return f"""\
# Written by 'dialer install'. The HTTP API and the call controller.
[Unit]
Description=dialer-engine: HTTP API and call controller
Documentation=file://{config}
After=network-online.target postgresql.service redis-server.service dialer-asterisk.service
Wants=network-online.target dialer-asterisk.service

[Service]
Type=simple
User={user}
Group={user}
Environment=DIALER_CONFIG={config}
# Refuses to start with a default password, plain SIP on a public address, an unvouched caller ID.
ExecStart={dialer} serve --drain-seconds {DRAIN_SECONDS}
# SIGTERM: stop taking calls, let live calls end, flush the outbox (docs/deploy.md, "Upgrading").
KillSignal=SIGTERM
TimeoutStopSec={DRAIN_SECONDS + 60}
Restart=on-failure
RestartSec=2
UMask=0077
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths={" ".join(writable)}
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""


def asterisk_unit(dialer: Path, config: Path, settings: Settings) -> str:
    return f"""\
# Written by 'dialer install'. The project's Asterisk 22 (system package or the cached Debian root
# in {settings.asterisk_root}), its configuration rendered from the settings at each start.
[Unit]
Description=dialer-engine: Asterisk 22 (instance {settings.instance})
Documentation=file://{config}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
Environment=DIALER_CONFIG={config}
# Root only to mount /proc and enter the cached root; Asterisk runs as its own user (-U asterisk).
ExecStart={dialer} asterisk run
# New calls are refused at once; the calls that are up end normally (up to the timeout).
ExecStop={dialer} asterisk stop --gracefully --timeout {ASTERISK_STOP_SECONDS}
TimeoutStopSec={ASTERISK_STOP_SECONDS + 60}
Restart=on-failure
RestartSec=2
LimitNOFILE=65536
LimitCORE=0

[Install]
WantedBy=multi-user.target
"""


def logrotate(settings: Settings) -> str:
    return f"""\
# Written by 'dialer install'. Asterisk's logs; the dialer itself logs to the journal.
{asterisk_log_dir(settings)}/*.log {{
    daily
    rotate 14
    missingok
    notifempty
    compress
    delaycompress
    copytruncate
    su root root
}}
"""


def fail2ban_jail(settings: Settings) -> str:
    ports = sorted({settings.sip_port, settings.sip_tls_port, settings.wss_port})
    return f"""\
# Written by 'dialer install'. Addresses that fail SIP authentication again and again (password
# guessing, registration floods) are locked out of every port for an hour. Asterisk writes the
# security events (InvalidPassword, ChallengeResponseFailed, FailedACL) to this log; fail2ban's
# stock 'asterisk' filter reads them.
[dialer-asterisk]
enabled = true
filter = asterisk
backend = auto
logpath = {asterisk_log_dir(settings)}/security.log
          {asterisk_log_dir(settings)}/messages.log
port = {",".join(str(port) for port in ports)}
protocol = all
maxretry = 5
findtime = 600
bantime = 3600
action = %(banaction_allports)s
"""


def build_plan(settings: Settings, config: Path, dialer: Path, user: str) -> Plan:
    plan = Plan(user)
    secrets_dir = config.parent / "secrets"
    plan.folders += [
        Folder(config.parent, 0o750, "root", group=user),
        Folder(secrets_dir, 0o700, user, fix_files=True),
        Folder(settings.state_dir, 0o700, user, fix_files=True),
        Folder(settings.sip_credentials_file.parent, 0o700, user, fix_files=True),
        Folder(settings.recordings_dir, 0o700, user, fix_files=True),
        Folder(settings.recording_keys_dir, 0o700, user, fix_files=True),
        Folder(settings.cache_dir, 0o755, "root"),
    ]
    plan.permissions.append(Permission(config, 0o640, "root", user))
    unique: dict[Path, Folder] = {}
    for folder in plan.folders:
        unique.setdefault(folder.path, folder)
    plan.folders = list(unique.values())
    plan.files += [
        File(UNITS_DIR / "dialer-asterisk.service", asterisk_unit(dialer, config, settings)),
        File(UNITS_DIR / "dialer.service", dialer_unit(dialer, config, settings, user)),
        File(Path("/etc/logrotate.d/dialer"), logrotate(settings)),
        File(Path("/etc/fail2ban/jail.d/dialer.conf"), fail2ban_jail(settings)),
    ]
    plan.commands += [["systemctl", "daemon-reload"],
                      ["systemctl", "enable", "dialer-asterisk.service", "dialer.service"]]
    return plan


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def _useradd(user: str) -> list[str]:
    return ["useradd", "--system", "--user-group", "--home-dir", "/var/lib/dialer", "--no-create-home",
            "--shell", "/usr/sbin/nologin", "--comment", "dialer-engine", user]


def describe(plan: Plan, prefix: Path) -> list[str]:
    lines = []
    if prefix == Path("/"):
        state = "exists" if _user_exists(plan.user) else f"create ({' '.join(_useradd(plan.user))})"
        lines.append(f"user     {plan.user}: {state}")
    for folder in plan.folders:
        extra = ", files inside 0600 and folders 0700" if folder.fix_files else ""
        lines.append(f"folder   {folder.path}  {folder.mode:04o} {folder.owner}:{folder.group or folder.owner}{extra}")
    for permission in plan.permissions:
        lines.append(f"mode     {permission.path}  {permission.mode:04o} {permission.owner}:{permission.group}")
    for item in plan.files:
        lines.append(f"file     {item.path}  {item.mode:04o} {item.owner}:{item.owner}")
        lines += [f"  | {line}" for line in item.text.splitlines()]
    if prefix == Path("/"):
        lines += [f"run      {' '.join(command)}" for command in plan.commands]
    return lines


def _ids(owner: str, group: str = "") -> tuple[int, int]:
    entry = pwd.getpwnam(owner)
    return entry.pw_uid, (pwd.getpwnam(group).pw_gid if group else entry.pw_gid)


def _under(prefix: Path, path: Path) -> Path:
    return prefix / path.relative_to("/") if path.is_absolute() else prefix / path


def apply(plan: Plan, prefix: Path) -> None:
    system = prefix == Path("/")
    if system and os.geteuid() != 0:
        raise UserError("Installing the service needs root: run 'sudo dialer install' (or --dry-run to see the plan).")
    if system and not _user_exists(plan.user):
        subprocess.run(_useradd(plan.user), check=True)
    chown = system or os.geteuid() == 0
    for folder in plan.folders:
        target = _under(prefix, folder.path)
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(folder.mode)
        known = _user_exists(folder.owner) and (not folder.group or _user_exists(folder.group))
        ids = _ids(folder.owner, folder.group) if chown and known else None
        if ids:
            os.chown(target, *ids)
        if folder.fix_files:
            for path in target.rglob("*"):
                if path.is_symlink():
                    continue
                path.chmod(0o700 if path.is_dir() else 0o600)
                if ids:
                    os.chown(path, *ids)
    for permission in plan.permissions:
        target = _under(prefix, permission.path)
        if target.exists():
            target.chmod(permission.mode)
            if chown and _user_exists(permission.owner) and _user_exists(permission.group):
                os.chown(target, *_ids(permission.owner, permission.group))
    for item in plan.files:
        target = _under(prefix, item.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item.text)
        target.chmod(item.mode)
    if system:
        if shutil.which("systemctl") is None:
            raise UserError("systemctl is not here: this install needs systemd (the unit files are written).")
        for command in plan.commands:
            subprocess.run(command, check=True)


def _install(args: argparse.Namespace) -> int:
    config: Path = args.config.resolve()
    if not config.is_file():
        raise UserError(f"No configuration at {config}: write one with 'dialer config init --path {config}', "
                        "edit it, then run 'dialer install' again.")
    settings = from_environment({"DIALER_CONFIG": str(config)})
    dialer: Path = args.dialer or Path(sys.executable).with_name("dialer")
    if dialer.resolve().is_relative_to("/home") or dialer.resolve().is_relative_to("/root"):
        # The unit's ProtectHome=yes hides /home and /root from the service.
        raise UserError(f"The dialer command is under a home folder ({dialer}), which the service cannot see: "
                        "install the project in /opt/dialer (docs/deploy.md) and run its dialer install.")
    plan = build_plan(settings, config, dialer, args.user)
    prefix: Path = args.prefix
    if args.dry_run:
        print("dialer install --dry-run: nothing is changed")
        print("\n".join(describe(plan, prefix)))
        return 0
    apply(plan, prefix)
    print(f"Installed: user {plan.user}, {len(plan.folders)} folders, {len(plan.files)} files under {prefix}.")
    if prefix == Path("/"):
        print(f"Check the configuration as the service will see it: sudo -u {plan.user} env DIALER_CONFIG={config} "
              f"{dialer} config check; then: systemctl start dialer-asterisk dialer")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    install = subparsers.add_parser("install", help="run as a service: systemd units, a user, PHI permissions")
    install.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
    install.add_argument("--config", type=Path, default=DEFAULT_CONFIG_FILE,
                         help=f"the configuration file the services use (default {DEFAULT_CONFIG_FILE})")
    install.add_argument("--user", default=SERVICE_USER, help="the system user running 'dialer serve'")
    install.add_argument("--prefix", type=Path, default=Path("/"), help="write under this folder instead of /")
    install.add_argument("--dialer", type=Path, help="the dialer command the units run (default: this one)")
    install.set_defaults(handler=_install)
