"""`dialer config init|check|certificate`: write a configuration file, validate one, make a development certificate.

`check` validates everything a start would need and prints what will be used (secrets
masked): the settings and where each came from, the refusals of production mode, the TLS
certificate, PostgreSQL and Redis, the ports, every trunk against its carrier (TLS handshake,
the digest password, `dialer.provision.sipcheck`), and the caller ID of every campaign in the
CRM against the vouched numbers. Exit 0 when nothing is wrong, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import secrets
import socket
import sys
import urllib.request
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import structlog

from dialer.ari.auth import basic_auth
from dialer.cli import UserError
from dialer.provision.credentials import write_private
from dialer.provision.sipcheck import probe_trunk
from dialer.provision.tls import check_certificate, self_signed
from dialer.provision.trunks import Trunk
from dialer.settings import (
    DEFAULT_CONFIG_FILE,
    Settings,
    from_environment,
    secret_fields,
    setting_sources,
)

TEMPLATE = """\
# dialer-engine configuration, written by 'dialer config init'.
#
# Every setting is here, with its default or a starting value. A DIALER_* environment variable
# overrides the line it names (README, "Settings"). Secrets are read from files (the *_file
# keys): mode 0600, owned by the service's user. Check the file with 'dialer config check'.

# development: everything on 127.0.0.1, development defaults allowed, the simulated carrier.
# production: default passwords, plain SIP on a public address and unvouched caller IDs are refused.
mode = "production"

[asterisk]
# The Asterisk instance's name (its folders under the cache's Asterisk root).
instance = "prod"
# Debian mirror for building the cached Asterisk root (empty: debootstrap's default).
debian_mirror = ""
# Development only: the simulated carrier's port on 127.0.0.1.
carrier_port = 5070

[ari]
# Asterisk's REST interface; it listens on 127.0.0.1 only (the dialer runs on this host).
port = 8088
user = "dialer"
password_file = "{secrets}/ari-password"
app = "dialer"

[http]
# The dialer's HTTP API and consoles: keep them on 127.0.0.1 behind a TLS reverse proxy.
host = "127.0.0.1"
port = 8080
# The base URL CRMs reach this API at (the proxy's, e.g. "https://pbx.example.com"), for the
# recording links in webhooks; empty: http://host:port.
public_url = ""

[database]
# The CRM database. With a password, keep the whole URL in a file: dsn_file = "{secrets}/pg-dsn".
dsn = "postgresql://dialer@127.0.0.1:5432/dialer"

[redis]
# DNC lists, opt-outs, caps, agent state. With a password: url_file = "{secrets}/redis-url".
url = "redis://127.0.0.1:6379/0"
prefix = "dialer:"

[paths]
# The cached Asterisk root (when no Asterisk 22 is installed on the system).
cache_dir = "/var/cache/dialer"
# Durable local state: the CRM outbox and the phones' SIP credentials (0700, files 0600).
state_dir = "/var/lib/dialer/state"
# The recordings archive and the keyring sealing it (PHI: 0700, files 0600).
recordings_dir = "/var/lib/dialer/recordings"
recording_keys_dir = "/var/lib/dialer/keys"
# The phones' SIP credentials; empty: state_dir/sip-credentials.json.
sip_credentials_file = ""
# The key signing the audit trail's checkpoints and evidence packets (0700, file 0600).
audit_keys_dir = "/var/lib/dialer/audit-keys"

[phones]
# Every agent and supervisor gets a desk-phone endpoint and a browser endpoint.
agents = 20
supervisors = 5

[sip]
# The address SIP listens on (0.0.0.0: every interface; a public one needs tls = true).
bind = "0.0.0.0"
port = 5060
# TLS for desk phones and TLS trunks, and SRTP for desk phones' media.
tls = true
tls_port = 5061
srtp = true
# The name phones register to (the TLS certificate's name); empty: the external or bind address.
domain = ""
# When not empty, only these addresses or networks (and the carriers) reach SIP at all.
permit = []

[network]
# Behind NAT: the public address announced in SIP and SDP, and the networks reached directly.
external_address = ""
external_media_address = ""
local_nets = []
# A STUN server (host:port) for Asterisk's ICE; also what browser phones are given.
stun_server = ""

[rtp]
# Media ports (UDP): open this range in the firewall.
start = 10000
end = 20000

[tls]
# The certificate (with its chain) and key for SIP TLS and wss://, e.g. from ACME (Let's Encrypt);
# 'dialer config certificate' makes a self-signed one for development.
cert_file = "/etc/dialer/tls/fullchain.pem"
key_file = "/etc/dialer/tls/privkey.pem"
# CAs trusted for carriers' certificates; empty: the system's.
ca_file = ""

[wss]
# Browser phones over wss:// on Asterisk's own HTTPS (ARI is served there too: see docs/deploy.md),
# or enabled = false with a reverse proxy forwarding /ws to ws://127.0.0.1:ARI_PORT/ws, and
# public_url = "wss://pbx.example-agency.com/ws" (what browsers are told).
enabled = true
bind = ""
port = 8089
public_url = ""

[calling]
# Caller ID of campaigns that have none: one of [[caller_ids]] below.
default_caller_id = "+18885550100"
# The trunk leads are dialed through; empty: the first [[trunks]].
# trunk_endpoint = "carrier-a"

[recordings]
# The scheduled purge in `dialer serve`: recordings past their retention and not under legal hold
# are destroyed (data key, then file; the row stays as a tombstone) every this many hours; 0: never.
purge_every_hours = 24.0

[node]
# Admission control of this Asterisk node: calls live at once, calls being set up at once, new
# setups a second. Calls beyond wait their turn (none fail); measure your node and set these.
max_calls = 40
max_setups = 8
setups_per_second = 10

[controller]
# Several `dialer serve` sharing PostgreSQL and Redis (docs/cluster.md): the one holding the Redis
# lease is active, the others wait on standby and take over within 10 s when it dies.
lease = false
name = ""                           # empty: the host name and process id

[texting]
# How texts travel: "sip" (SIP MESSAGE through Asterisk and the trunk) or "http" (a provider).
transport = "sip"
# Text segments a second per sender number.
rate = 1.0
# The http transport: the provider's API base, account, token (a secret: http_token_file),
# and this API's public base URL, as the provider calls its webhooks.
http_url = ""
http_account = ""
http_token = ""  # in production: http_token_file = "{secrets}/texting-token"
webhook_url = ""

[agency]
# The agency named in texts sent outside a campaign (a campaign's seller_name wins).
name = "Insurance Agency"
# Where the reports' days, weeks and months begin (an IANA time zone).
timezone = "America/New_York"

[gate]
include_low_confidence = true
flags = ""
require_state_lists = true

[log]
level = "info"
format = "json"

# ---- carriers (docs/carrier.md) -------------------------------------------------------------
# Trunks in preference order: dials go to the first one that is up, with a channel free and within
# its calls per second; a 503 or a timeout before the phone rings retries the same call on the next
# one, and sends the next dials there for a minute.
#
# [[trunks]]
# name = "carrier-a"
# host = "sip.carrier-a.example"
# transport = "tls"                 # udp | tcp | tls
# port = 5061                       # 0: 5060, or 5061 for TLS
# auth = "digest"                   # digest (we register) | ip (the carrier knows our address)
# username = "agency123"
# password_file = "{secrets}/carrier-a-password"
# register = true
# realm = ""
# from_domain = ""                  # when the carrier wants its domain in From
# from_user = ""                    # only if the carrier insists (P-Asserted-Identity keeps the caller ID)
# codecs = ["ulaw", "alaw"]
# calls_per_second = 5.0            # 0: no limit
# max_channels = 0                  # concurrent calls the account allows; 0: no limit
# srtp = false                      # SDES-SRTP media (TLS only)
# verify_certificate = true
# ca_file = ""
# match = []                        # where the carrier's calls come from; empty: its host
# qualify_seconds = 60

# Caller IDs the agency may send. 16 CFR 310.4(a)(8): a number the agency answers during business
# hours; record who vouched that the agency owns it, and when.
#
# [[caller_ids]]
# number = "+12125550123"
# owner = "Example Insurance Agency LLC"
# vouched_by = "Jane Smith, compliance officer"
# vouched_on = 2026-03-01
# answered_by = "the agency's front desk, 9-5 ET"
# name = "EXAMPLE INS"

# Inbound numbers and the campaign their callers belong to.
#
# [[dids]]
# number = "+12125550123"
# campaign = "medsupp"

# A cluster (docs/cluster.md): the Asterisk nodes this controller drives, each with its own ARI
# and admission ceiling. None: the one node [ari] names.
#
# [[nodes]]
# name = "node1"
# ari_url = "http://10.0.0.11:8088/ari"
# ari_user = "dialer"
# ari_password_file = "{secrets}/ari-password"
# max_calls = 40                    # calls live on the node at once
# max_setups = 8                    # calls being set up at once
# setups_per_second = 10
"""


def template(secrets_dir: Path) -> str:
    return TEMPLATE.replace("{secrets}", str(secrets_dir))


def _init(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists() and not args.force:
        raise UserError(f"{path} exists: edit it, or pass --force to replace it.")
    secrets_dir = path.parent / "secrets"
    write_private(path, template(secrets_dir))
    ari = secrets_dir / "ari-password"
    if not ari.exists():
        write_private(ari, secrets.token_urlsafe(24) + "\n")
    print(f"Wrote {path} (mode production) and a generated ARI password in {ari}.")
    print("Next: set [sip] domain and the TLS files, add your carrier ([[trunks]]), caller IDs and DIDs "
          f"(docs/carrier.md), then run: DIALER_CONFIG={path} dialer config check")
    return 0


def require_usable(settings: Settings) -> None:
    """Refuse to start (UserError, one sentence saying what to do) with settings we cannot use:
    outside development, a default password or plain SIP on a public address among them."""
    problems = settings.problems()
    if not problems:
        return
    more = f" ({len(problems) - 1} more: run 'dialer config check')" if len(problems) > 1 else ""
    raise UserError(f"{problems[0]}{more}")


# ---- check -----------------------------------------------------------------------------------
class Report:
    def __init__(self, out: bool) -> None:
        self.show = out
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.oks: list[str] = []

    def ok(self, message: str) -> None:
        self.oks.append(message)
        if self.show:
            print(f"ok       {message}")

    def error(self, message: str) -> None:
        self.errors.append(message)
        if self.show:
            print(f"ERROR    {message}")

    def warning(self, message: str) -> None:
        self.warnings.append(message)
        if self.show:
            print(f"warning  {message}")


def _shown(name: str, value: object) -> str:
    if name in secret_fields() and isinstance(value, str) and "://" in value:
        # A URL: its password masked, the rest shown (which server, which database).
        parts = urlsplit(value)
        if parts.password:
            netloc = f"{parts.username}:******@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        return value
    if name in secret_fields() and value:
        return "******"
    if isinstance(value, tuple) and value and not isinstance(value[0], str):
        return ", ".join(item.name if isinstance(item, Trunk) else str(getattr(item, "number", "?")) for item in value)
    if isinstance(value, tuple):
        return ", ".join(value) or "(none)"
    return str(value) if value != "" else "(empty)"


def print_settings(settings: Settings, sources: dict[str, str]) -> None:
    print(f"Settings ({settings.config_file or 'no configuration file'}; mode {settings.mode}):")
    for item in fields(Settings):
        if item.name == "config_file":
            continue
        value = getattr(settings, item.name)
        print(f"  {item.name:<28} {_shown(item.name, value):<44} {sources.get(item.name, 'default')}")
    for trunk in settings.trunks:
        auth = f"digest as {trunk.username}" if trunk.auth.value == "digest" else "by address"
        print(f"  trunk {trunk.name}: {trunk.transport.value}://{trunk.host}:{trunk.effective_port}, {auth}, "
              f"codecs {','.join(trunk.codecs)}, "
              f"{trunk.calls_per_second or 'no'} calls/s limit{', SRTP' if trunk.srtp else ''}")
    for record in settings.caller_ids:
        print(f"  caller ID {record.number}: owner {record.owner}, vouched by {record.vouched_by} on "
              f"{record.vouched_on}")
    for route in settings.dids:
        print(f"  DID {route.number} -> campaign {route.campaign}")


def _port_free(host: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(settings: Settings, report: Report, asterisk_running: bool) -> None:
    wanted: list[tuple[str, str, int, int]] = [("the HTTP API", settings.http_host, settings.http_port,
                                                 socket.SOCK_STREAM)]
    if not asterisk_running:
        bind = settings.sip_bind
        wanted += [("ARI", "127.0.0.1", settings.ari_port, socket.SOCK_STREAM),
                   ("SIP (UDP)", bind, settings.sip_port, socket.SOCK_DGRAM)]
        if settings.sip_tls:
            wanted.append(("SIP (TLS)", bind, settings.sip_tls_port, socket.SOCK_STREAM))
        if settings.wss:
            wanted.append(("wss", settings.wss_bind or bind, settings.wss_port, socket.SOCK_STREAM))
    for what, host, port, kind in wanted:
        if _port_free(host, port, kind):
            report.ok(f"port {host}:{port} for {what} is free")
        elif what == "the HTTP API":
            report.warning(f"port {host}:{port} for {what} is taken (a running 'dialer serve'?)")
        else:
            report.error(f"port {host}:{port} for {what} is taken: stop what holds it, or change the port.")


def check_certificates(settings: Settings, report: Report, now: dt.datetime) -> None:
    if not (settings.sip_tls or settings.wss) or not (settings.tls_cert_file and settings.tls_key_file):
        return
    key = Path(settings.tls_key_file).expanduser()
    if key.exists() and not os.access(key, os.R_OK) and os.geteuid() != 0:
        # Asterisk's unit reads it as root; the service user need not (and should not).
        report.warning(f"The TLS key {key} is not readable by this user: run the check as root to check the "
                       "certificate (Asterisk reads it as root).")
        return
    problems = check_certificate(settings.tls_cert_file, settings.tls_key_file, now,
                                 names=[settings.public_sip_host] if not settings.development else None)
    for problem in problems:
        report.error(problem)
    if not problems:
        report.ok(f"TLS certificate {settings.tls_cert_file} and its key")
    for path in [settings.tls_ca_file, *(trunk.ca_file for trunk in settings.trunks)]:
        if path and not Path(path).expanduser().is_file():
            report.error(f"The CA file {path} cannot be read: fix the path.")


def check_trunks(trunks: tuple[Trunk, ...], ca_file: str, report: Report, timeout: float) -> None:
    for trunk in trunks:
        result = probe_trunk(trunk, ca_file=ca_file, timeout=timeout)
        (report.ok if result.ok else report.error)(result.message)


async def campaign_caller_ids(dsn: str) -> list[tuple[str, str | None]] | None:
    import asyncpg

    try:
        connection = await asyncpg.connect(dsn, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return None
    try:
        rows = await connection.fetch("SELECT campaign_id, caller_id FROM campaigns ORDER BY campaign_id")
    except asyncpg.PostgresError:
        return None
    finally:
        await connection.close()
    return [(str(row["campaign_id"]), row["caller_id"]) for row in rows]


async def log_caller_id_problems(settings: Settings, log: structlog.typing.FilteringBoundLogger) -> int:
    """At start: every campaign in the CRM whose caller ID is not vouched, one error line each
    (16 CFR 310.4(a)(8)); the number of them."""
    found = 0
    for campaign_id, caller_id in await campaign_caller_ids(settings.pg_dsn) or []:
        problem = settings.caller_id_problem(caller_id or settings.caller_id)
        if problem:
            log.error("caller_id_not_vouched", campaign_id=campaign_id, problem=problem)
            found += 1
    return found


def check_services(settings: Settings, report: Report) -> None:
    from dialer.provision.services import postgres_answers, redis_answers

    if postgres_answers(settings.pg_dsn):
        report.ok("PostgreSQL answers")
        campaigns = asyncio.run(campaign_caller_ids(settings.pg_dsn))
        for campaign_id, caller_id in campaigns or []:
            problem = settings.caller_id_problem(caller_id or settings.caller_id)
            if problem:
                report.error(f"Campaign {campaign_id}: {problem}")
        known = {campaign_id for campaign_id, _ in campaigns or []}
        for route in settings.dids:
            if campaigns is not None and route.campaign not in known:
                report.warning(f"DID {route.number} rings campaign {route.campaign}, which the CRM does not have yet.")
    else:
        report.error("PostgreSQL does not answer at the configured DSN: start it, or fix [database] dsn.")
    if redis_answers(settings.redis_url):
        report.ok("Redis answers")
    else:
        report.error("Redis does not answer at the configured URL: start it, or fix [redis] url.")


def _ari_answers(settings: Settings) -> bool:
    """Our Asterisk is up (its ARI accepts our credentials): its ports are taken by it, as they should be."""
    request = urllib.request.Request(f"{settings.ari_url}/asterisk/info")
    request.add_header("Authorization", basic_auth(settings.ari_user, settings.ari_password))
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def run_check(settings: Settings, *, network: bool, show: bool, timeout: float = 5.0) -> Report:
    """Every check of `dialer config check`; the report says what is wrong (and prints when `show`)."""
    report = Report(show)
    now = dt.datetime.now(dt.UTC)
    for problem in settings.problems(now.date()):
        report.error(problem)
    for warning in settings.warnings():
        report.warning(warning)
    check_certificates(settings, report, now)
    if network:
        check_services(settings, report)
        check_ports(settings, report, asterisk_running=_ari_answers(settings))
        check_trunks(settings.trunks, settings.tls_ca_file, report, timeout)
    return report


def _check(args: argparse.Namespace) -> int:
    if not 0 < args.timeout < math.inf:  # a negative or NaN wait is no wait to give a carrier
        raise UserError(f"--timeout must be a number of seconds above 0, not {args.timeout}")
    settings = from_environment()
    if not args.quiet and not args.json:
        print_settings(settings, setting_sources())
        print()
    report = run_check(settings, network=not args.no_network, show=not args.json, timeout=args.timeout)
    if args.json:
        print(json.dumps({"ok": not report.errors, "errors": report.errors, "warnings": report.warnings,
                          "passed": report.oks}))
    elif report.errors:
        print(f"\n{len(report.errors)} problem(s): fix them and run 'dialer config check' again.", file=sys.stderr)
    else:
        print("\nThe configuration is usable.")
    return 1 if report.errors else 0


def _certificate(args: argparse.Namespace) -> int:
    names = args.name or ["localhost", "127.0.0.1"]
    out: Path = args.out_dir
    cert, key = out / "dev-cert.pem", out / "dev-key.pem"
    if (cert.exists() or key.exists()) and not args.force:
        raise UserError(f"{cert} or {key} exists: pass --force to replace them.")
    if out.exists() and not out.is_dir():  # was NotADirectoryError
        raise UserError(f"--out-dir {out} is a file: give a directory")
    try:
        self_signed(cert, key, names, dt.datetime.now(dt.UTC))
    except OSError as error:
        raise UserError(f"cannot write the certificate into {out} ({error.strerror})") from None
    print(f"Self-signed certificate for {', '.join(names)}: {cert} (key {key}, 0600). For development only: "
          "phones and browsers must be told to trust it.")
    print(f'[tls]\ncert_file = "{cert}"\nkey_file = "{key}"')
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = subparsers.add_parser("config", help="the configuration file: init, check, a development certificate")
    commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    init = commands.add_parser("init", help="write a commented configuration file with every setting")
    init.add_argument("--path", type=Path, default=DEFAULT_CONFIG_FILE, help=f"where (default {DEFAULT_CONFIG_FILE})")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    # Runs before any configuration exists (DIALER_CONFIG may name the file it writes).
    init.set_defaults(handler=_init, needs_settings=False)
    check = commands.add_parser("check", help="validate the settings, services, certificates and carriers")
    check.add_argument("--no-network", action="store_true", help="only the settings and files (no services, "
                       "ports or carriers)")
    check.add_argument("--quiet", action="store_true", help="do not print the settings")
    check.add_argument("--json", action="store_true", help="the result as one JSON object")
    check.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each carrier")
    check.set_defaults(handler=_check)
    certificate = commands.add_parser("certificate", help="make a self-signed TLS certificate for development")
    certificate.add_argument("--name", action="append", help="a host name or address it is for (repeat)")
    certificate.add_argument("--out-dir", type=Path, default=Path.cwd(), help="where to write it")
    certificate.add_argument("--force", action="store_true")
    certificate.set_defaults(handler=_certificate)

