"""Typed configuration, built once in the entry point: a TOML file, the environment, secrets from files.

Where each setting comes from, lowest first: its default here; the configuration file
(``DIALER_CONFIG``, else ``/etc/dialer/dialer.toml`` when it exists; none in development and
tests); a ``DIALER_*`` environment variable; an explicit override (tests, the demo). A secret
(a field with ``repr=False``) may also be read from a file: ``password_file = "/path"`` in the
file, ``DIALER_ARI_PASSWORD_FILE`` in the environment, as systemd credentials and container
secrets provide them.

The file's keys are the field names split at their first underscore into a table and a key:
``[ari] port`` is ``ari_port``, ``[texting] http_url`` is ``texting_http_url``; a top-level key
is the field itself (``agents = 20``); ``ALIASES`` gives a few friendlier names
(``[database] dsn``). Lists of tables hold the carrier settings: ``[[trunks]]``,
``[[caller_ids]]``, ``[[dids]]`` (``dialer.provision.trunks``); ``[[nodes]]`` lists the Asterisk
nodes one controller drives (docs/cluster.md; none: the one node ``[ari]`` names). ``dialer config init`` writes a
commented file with every setting; ``dialer config check`` validates one.

Nothing deeper in the code reads the environment: it receives a `Settings`. Secrets never
appear in `repr` or in logs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dialer.campaign.caller_id import CallerIdCheck, check_caller_id
from dialer.provision.trunks import (
    CallerIdRecord,
    DidRoute,
    Transport,
    Trunk,
    TrunkAuth,
    check_plan,
)


@dataclass(frozen=True)
class AriNode:
    """One Asterisk node of a cluster (`[[nodes]]`): its ARI and its admission ceiling."""

    name: str
    ari_url: str
    ari_user: str = "dialer"
    ari_password: str = field(default="", repr=False)
    max_calls: int = 40
    max_setups: int = 8
    setups_per_second: int = 10

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a node needs a name")
        if not self.ari_url.startswith(("http://", "https://")):
            raise ValueError(f"ari_url must start with http:// or https://, got {self.ari_url!r}")
        if self.max_calls < 1 or self.max_setups < 1 or self.setups_per_second < 1:
            raise ValueError("max_calls, max_setups and setups_per_second must be positive")


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable or key."""


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dialer"


# ARI listens on 127.0.0.1 only; this default is for development, and is announced at start.
DEVELOPMENT_ARI_PASSWORD = "dialer-dev-secret"
# What `dialer config init` leaves where a secret must go: refused like a default password.
PLACEHOLDER_SECRETS = frozenset({DEVELOPMENT_ARI_PASSWORD, "change-me", "changeme", "secret", "password", ""})
DEFAULT_CONFIG_FILE = Path("/etc/dialer/dialer.toml")
MODES = ("development", "production")
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Settings:
    """Every knob of the engine; README's settings section lists them with their variables."""

    # development: everything on 127.0.0.1, development defaults allowed, the simulated carrier;
    # production: default passwords and plain SIP on a public address are refused.
    mode: str = "development"
    pg_dsn: str = field(default="postgresql://postgres@127.0.0.1:5432/dialer", repr=False)
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    redis_prefix: str = "dialer:"
    cache_dir: Path = field(default_factory=_default_cache_dir)
    instance: str = "dev"
    ari_port: int = 8088
    sip_port: int = 5060
    carrier_port: int = 5070
    ari_user: str = "dialer"
    ari_password: str = field(default=DEVELOPMENT_ARI_PASSWORD, repr=False)
    ari_app: str = "dialer"
    debian_mirror: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # This API's public base URL (behind a reverse proxy): the recording links in webhooks.
    http_public_url: str = ""
    agents: int = 20
    supervisors: int = 5
    rtp_start: int = 10000
    rtp_end: int = 20000
    # Where durable local state lives (the CRM outbox); empty: cache_dir/state/<instance>.
    state_root: str = ""
    # Where finished call recordings are archived; empty: cache_dir/recordings.
    recordings_root: str = ""
    recording_keys_root: str = ""
    # How often `dialer serve` purges recordings past their retention and not under legal hold
    # (recordings.lifecycle.purge); 0: never (run `dialer recording purge` from a timer instead).
    recordings_purge_every_hours: float = 24.0
    # The Ed25519 key signing the audit trail's checkpoints and evidence packets; empty:
    # state_dir/../audit-keys.
    audit_keys_root: str = ""
    # The phones' SIP credentials file (0600); empty: state_dir/sip-credentials.json.
    sip_credentials_path: str = ""
    caller_id: str = "+18885550100"
    # The endpoint leads are dialed through; with [[trunks]], the first one's name unless set.
    trunk_endpoint: str = "trunk"
    # Admission control of this Asterisk node (dialer.runtime.admission): calls live at once,
    # calls being set up at once, setups a second.
    node_max_calls: int = 40
    node_max_setups: int = 8
    node_setups_per_second: int = 10
    # Compliance gate switches (compliance_rules.rules.GateOptions).
    gate_include_low_confidence: bool = True
    gate_flags: str = ""  # comma-separated flags enabling flagged rules, e.g. "pa_sb992"
    gate_require_state_lists: bool = True
    log_level: str = "info"
    log_format: str = "auto"  # json | console | auto (console on a terminal)
    # Texting (docs/texting.md): which transport carries texts, the agency's name in texts sent
    # outside a campaign, and each sender number's rate (segments per second).
    texting_transport: str = "sip"  # sip (Asterisk, SIP MESSAGE) | http (a messaging provider)
    agency_name: str = "Insurance Agency"
    # Where the reports' days, weeks and months begin (an IANA time zone name).
    agency_timezone: str = "America/New_York"
    texting_rate: float = 1.0
    texting_http_url: str = ""  # the provider's API base, e.g. https://api.example.com
    texting_http_account: str = ""
    texting_http_token: str = field(default="", repr=False)
    texting_webhook_url: str = ""  # this API's public base URL, as the provider calls it
    # ---- agents from anywhere: addresses, NAT, TLS, WSS, SRTP (docs/deploy.md) ----------------
    sip_bind: str = "127.0.0.1"  # the address SIP's UDP/TCP/TLS transports listen on
    sip_tls: bool = False  # a TLS transport (sip_tls_port) for desk phones and TLS trunks
    sip_tls_port: int = 5061
    sip_domain: str = ""  # the name phones register to; empty: the external address, else the bind address
    sip_srtp: bool = False  # desk phones' media encrypted (SDES-SRTP; needs sip_tls)
    # When set, only these addresses or networks (and the carriers) reach SIP at all (Asterisk ACL).
    sip_permit: tuple[str, ...] = ()
    external_address: str = ""  # the public address announced in SIP and SDP when behind NAT
    external_media_address: str = ""  # empty: external_address
    local_nets: tuple[str, ...] = ()  # networks reached without NAT (e.g. 10.0.0.0/8)
    stun_server: str = ""  # host:port; Asterisk learns its public address, browsers get it for ICE
    tls_cert_file: str = ""  # PEM certificate (chain) for SIP TLS and WSS
    tls_key_file: str = ""  # its private key (PEM)
    tls_ca_file: str = ""  # CAs trusted for carriers' certificates; empty: the system's
    wss: bool = False  # browser phones over wss:// on Asterisk's own HTTPS (else ws:// on 127.0.0.1, or a proxy)
    wss_bind: str = ""  # empty: sip_bind
    wss_port: int = 8089
    # The wss:// URL browsers use when a reverse proxy terminates TLS in front of ws:// (wss = false).
    ws_public_url: str = ""
    # ---- carriers (dialer/provision/trunks.py, docs/carrier.md) -----------------------------
    trunks: tuple[Trunk, ...] = ()
    caller_ids: tuple[CallerIdRecord, ...] = ()
    dids: tuple[DidRoute, ...] = ()
    # ---- a cluster (docs/cluster.md): the Asterisk nodes this controller drives; empty: [ari] ----
    nodes: tuple[AriNode, ...] = ()
    # Several `dialer serve` sharing PostgreSQL and Redis: one active (it holds a Redis lease),
    # the others on standby, taking over within seconds (docs/cluster.md). Off: one controller.
    controller_lease: bool = False
    controller_name: str = ""  # this controller's name in the lease; empty: host name and process id
    # Where these settings came from (a file path, or empty); set by the loader.
    config_file: str = ""

    # -- derived --------------------------------------------------------------------------------
    @property
    def development(self) -> bool:
        return self.mode == "development"

    @property
    def asterisk_root(self) -> Path:
        """The cached Debian sid root that Asterisk runs from (when none is on PATH)."""
        return self.cache_dir / "asterisk-root"

    @property
    def state_dir(self) -> Path:
        """Durable local state of this instance (the CRM outbox's SQLite file)."""
        if self.state_root:
            return Path(self.state_root).expanduser()
        return self.cache_dir / "state" / self.instance

    @property
    def default_password_warning(self) -> str | None:
        """One sentence when ARI runs with the development default password, else None."""
        if self.ari_password != DEVELOPMENT_ARI_PASSWORD:
            return None
        return ("Warning: ARI uses the development default password (DIALER_ARI_PASSWORD is not set); "
                f"it listens on 127.0.0.1:{self.ari_port} only. Set DIALER_ARI_PASSWORD to a secret of "
                "your own before anyone else can reach this machine.")

    @property
    def sip_credentials_file(self) -> Path:
        """The phones' SIP credentials generated at provisioning (0600; dialer.provision.credentials)."""
        if self.sip_credentials_path:
            return Path(self.sip_credentials_path).expanduser()
        return self.state_dir / "sip-credentials.json"

    @property
    def recordings_dir(self) -> Path:
        if self.recordings_root:
            return Path(self.recordings_root).expanduser()
        return self.cache_dir / "recordings"

    @property
    def recording_keys_dir(self) -> Path:
        """The recordings keyring (one 0600 file per key; the newest seals)."""
        if self.recording_keys_root:
            return Path(self.recording_keys_root).expanduser()
        return self.state_dir.parent / "recording-keys"

    @property
    def audit_keys_dir(self) -> Path:
        """The audit signing key's folder (0700; one 0600 key file)."""
        if self.audit_keys_root:
            return Path(self.audit_keys_root).expanduser()
        return self.state_dir.parent / "audit-keys"

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.ari_port}/ari"

    @property
    def public_sip_host(self) -> str:
        """The host phones register to and that SIP URIs name."""
        if self.sip_domain:
            return self.sip_domain
        if self.external_address:
            return self.external_address
        return "127.0.0.1" if _unspecified(self.sip_bind) else self.sip_bind

    @property
    def ws_url(self) -> str:
        """Where browsers' phones connect: a reverse proxy's wss:// URL, wss:// on Asterisk's HTTPS,
        else ws:// on 127.0.0.1."""
        if self.ws_public_url:
            return self.ws_public_url
        if self.wss:
            return f"wss://{self.public_sip_host}:{self.wss_port}/ws"
        return f"ws://127.0.0.1:{self.ari_port}/ws"

    @property
    def caller_ids_required(self) -> bool:
        """A campaign's caller ID must be one of `caller_ids` (vouched): in production, and in
        development once any is configured (without, the simulated network takes any number)."""
        return not self.development or bool(self.caller_ids)

    def caller_id_check(self, number: str | None, today: dt.date | None = None) -> CallerIdCheck:
        """Whether a campaign may send `number` as caller ID (`dialer.campaign.caller_id`)."""
        return check_caller_id(number, self.caller_ids, require_vouched=self.caller_ids_required,
                               today=today or dt.date.today())

    def caller_id_problem(self, number: str) -> str | None:
        """One sentence when a campaign may not send `number` as caller ID, else None."""
        check = self.caller_id_check(number)
        return None if check.ok else check.message

    # -- validation -----------------------------------------------------------------------------
    def problems(self, today: dt.date | None = None) -> list[str]:
        """Every setting we cannot use, one sentence each (empty: usable)."""
        today = today or dt.date.today()
        # What production refuses first: it is what the person starting it must fix first.
        found: list[str] = [] if self.development else self.production_refusals()
        if self.mode not in MODES:
            found.append(f"mode must be 'development' or 'production', not {self.mode!r}.")
        if self.log_format not in LOG_FORMATS:
            found.append(f"[log] format must be one of {', '.join(LOG_FORMATS)}, not {self.log_format!r}.")
        if self.log_level.lower() not in LOG_LEVELS:
            found.append(f"[log] level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}.")
        ports = {"ari_port": self.ari_port, "sip_port": self.sip_port, "http_port": self.http_port,
                 "sip_tls_port": self.sip_tls_port, "wss_port": self.wss_port, "carrier_port": self.carrier_port}
        for name, port in ports.items():
            if not 0 < port < 65536:
                found.append(f"{name} must be a port between 1 and 65535, got {port}.")
        if self.recordings_purge_every_hours < 0:
            found.append("[recordings] purge_every_hours cannot be negative (0 turns the scheduled purge off).")
        if not 0 < self.rtp_start < self.rtp_end < 65536:
            found.append(f"The RTP range {self.rtp_start}-{self.rtp_end} must be increasing ports below 65536.")
        for name in ("sip_bind", "wss_bind"):
            value = getattr(self, name)
            if value and not _is_address(value):
                found.append(f"{name} must be an IP address to listen on (e.g. 0.0.0.0 or 203.0.113.7), "
                             f"not {value!r}.")
        if self.ws_public_url and not self.ws_public_url.startswith("wss://"):
            found.append(f"[wss] public_url must be a wss:// URL (browsers refuse ws:// from an HTTPS page), "
                         f"not {self.ws_public_url!r}.")
        for name in ("external_address", "external_media_address"):
            value = getattr(self, name)
            if value and any(c in value for c in " ;/<>"):
                found.append(f"{name} must be an address or host name, not {value!r}.")
        for name in ("local_nets", "sip_permit"):
            for net in getattr(self, name):
                try:
                    ipaddress.ip_network(net, strict=False)
                except ValueError:
                    found.append(f"{name} has {net!r}: write addresses or networks like 10.0.0.0/8.")
        if self.sip_srtp and not self.sip_tls:
            found.append("sip_srtp needs sip_tls = true: SRTP keys travel in the signalling, which TLS protects.")
        needs_certificate = self.sip_tls or self.wss
        if needs_certificate and not (self.tls_cert_file and self.tls_key_file):
            found.append("TLS is on (sip_tls or wss) but [tls] cert_file and key_file are not set: point them at "
                         "your certificate and key, or make a development one with 'dialer config certificate'.")
        for trunk in self.trunks:
            if trunk.transport is Transport.TLS and not self.sip_tls:
                found.append(f"Trunk {trunk.name!r} uses TLS: set [sip] tls = true (with [tls] cert_file and "
                             "key_file) so Asterisk has a TLS transport.")
        found += check_plan(self.trunks, self.caller_ids, self.dids, today)
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names):
            found.append("Two [[nodes]] have the same name: give each Asterisk node its own.")
        if not self.development:
            if not self.trunks:
                found.append("No carrier trunk is configured: add a [[trunks]] section (docs/carrier.md).")
            check = self.caller_id_check(self.caller_id, today)
            if not check.ok:
                found.append(f"The default caller ID: {check.message}")
        return found

    def production_refusals(self) -> list[str]:
        """What a production start refuses, one sentence each saying what to do."""
        found = []
        if self.ari_password in PLACEHOLDER_SECRETS or len(self.ari_password) < 12:
            found.append("ARI still has a default or short password: put a secret of your own (12 characters or "
                         "more) in a file and set [ari] password_file (or DIALER_ARI_PASSWORD_FILE).")
        for trunk in self.trunks:
            if trunk.auth is TrunkAuth.DIGEST and trunk.password in PLACEHOLDER_SECRETS:
                found.append(f"Trunk {trunk.name!r} has a placeholder password: put the carrier's password in "
                             "the file its password_file names.")
        if _public(self.sip_bind) and not self.sip_tls:
            found.append(f"SIP would listen on public address {self.sip_bind} without TLS: set [sip] tls = true "
                         "with [tls] cert_file and key_file, or bind SIP to a private address.")
        if _public(self.sip_bind) and self.sip_tls and not self.sip_srtp:
            found.append("Desk phones on a public address need encrypted media: set [sip] srtp = true.")
        return found

    def warnings(self) -> list[str]:
        """Settings that work but deserve a look, one sentence each."""
        found = []
        if _public(self.http_host):
            found.append(f"The HTTP API listens on {self.http_host} without TLS: put a reverse proxy with TLS in "
                         "front of it and bind it to 127.0.0.1 (docs/deploy.md).")
        if self.wss and _public(self.wss_bind or self.sip_bind):
            found.append("Asterisk's HTTPS (wss) also serves ARI on that address: keep its password strong, or "
                         "proxy only /ws to it (docs/deploy.md).")
        for trunk in self.trunks:
            if trunk.transport is not Transport.TLS and not _private_host(trunk.host):
                found.append(f"Trunk {trunk.name!r} signals over {trunk.transport.value.upper()} across the "
                             "internet: use TLS if the carrier offers it.")
        return found


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _unspecified(value: str) -> bool:
    return _is_address(value) and ipaddress.ip_address(value).is_unspecified


def _public(address: str) -> bool:
    """True when listening on `address` is reachable from the internet (0.0.0.0 counts)."""
    if not _is_address(address):
        return False
    ip = ipaddress.ip_address(address)
    return ip.is_unspecified or ip.is_global


def _private_host(host: str) -> bool:
    return _is_address(host) and not ipaddress.ip_address(host).is_global


# ---- the environment ---------------------------------------------------------------------------
# env var -> field name
ENVIRONMENT: Mapping[str, str] = {
    "DIALER_MODE": "mode",
    "DIALER_PG_DSN": "pg_dsn",
    "DIALER_REDIS_URL": "redis_url",
    "DIALER_REDIS_PREFIX": "redis_prefix",
    "DIALER_CACHE_DIR": "cache_dir",
    "DIALER_INSTANCE": "instance",
    "DIALER_ARI_PORT": "ari_port",
    "DIALER_SIP_PORT": "sip_port",
    "DIALER_CARRIER_PORT": "carrier_port",
    "DIALER_ARI_USER": "ari_user",
    "DIALER_ARI_PASSWORD": "ari_password",
    "DIALER_ARI_APP": "ari_app",
    "DIALER_DEBIAN_MIRROR": "debian_mirror",
    "DIALER_HTTP_HOST": "http_host",
    "DIALER_HTTP_PORT": "http_port",
    "DIALER_HTTP_PUBLIC_URL": "http_public_url",
    "DIALER_AGENTS": "agents",
    "DIALER_SUPERVISORS": "supervisors",
    "DIALER_RECORDINGS_DIR": "recordings_root",
    "DIALER_RECORDING_KEYS_DIR": "recording_keys_root",
    "DIALER_RECORDINGS_PURGE_EVERY_HOURS": "recordings_purge_every_hours",
    "DIALER_AUDIT_KEYS_DIR": "audit_keys_root",
    "DIALER_CALLER_ID": "caller_id",
    "DIALER_TRUNK_ENDPOINT": "trunk_endpoint",
    "DIALER_NODE_MAX_CALLS": "node_max_calls",
    "DIALER_CONTROLLER_LEASE": "controller_lease",
    "DIALER_CONTROLLER_NAME": "controller_name",
    "DIALER_NODE_MAX_SETUPS": "node_max_setups",
    "DIALER_NODE_SETUPS_PER_SECOND": "node_setups_per_second",
    "DIALER_GATE_INCLUDE_LOW_CONFIDENCE": "gate_include_low_confidence",
    "DIALER_GATE_FLAGS": "gate_flags",
    "DIALER_GATE_REQUIRE_STATE_LISTS": "gate_require_state_lists",
    "DIALER_LOG_LEVEL": "log_level",
    "DIALER_LOG_FORMAT": "log_format",
    "DIALER_RTP_START": "rtp_start",
    "DIALER_RTP_END": "rtp_end",
    "DIALER_STATE_DIR": "state_root",
    "DIALER_SIP_CREDENTIALS_FILE": "sip_credentials_path",
    "DIALER_TEXTING_TRANSPORT": "texting_transport",
    "DIALER_AGENCY_NAME": "agency_name",
    "DIALER_TEXTING_RATE": "texting_rate",
    "DIALER_TEXTING_HTTP_URL": "texting_http_url",
    "DIALER_TEXTING_HTTP_ACCOUNT": "texting_http_account",
    "DIALER_TEXTING_HTTP_TOKEN": "texting_http_token",
    "DIALER_TEXTING_WEBHOOK_URL": "texting_webhook_url",
    "DIALER_SIP_BIND": "sip_bind",
    "DIALER_SIP_TLS": "sip_tls",
    "DIALER_SIP_TLS_PORT": "sip_tls_port",
    "DIALER_SIP_DOMAIN": "sip_domain",
    "DIALER_SIP_SRTP": "sip_srtp",
    "DIALER_SIP_PERMIT": "sip_permit",
    "DIALER_EXTERNAL_ADDRESS": "external_address",
    "DIALER_EXTERNAL_MEDIA_ADDRESS": "external_media_address",
    "DIALER_LOCAL_NETS": "local_nets",
    "DIALER_STUN_SERVER": "stun_server",
    "DIALER_TLS_CERT_FILE": "tls_cert_file",
    "DIALER_TLS_KEY_FILE": "tls_key_file",
    "DIALER_TLS_CA_FILE": "tls_ca_file",
    "DIALER_WSS": "wss",
    "DIALER_WSS_BIND": "wss_bind",
    "DIALER_WSS_PORT": "wss_port",
    "DIALER_WS_PUBLIC_URL": "ws_public_url",
    "DIALER_AGENCY_TIMEZONE": "agency_timezone",
}

# Friendlier names in the file: (table, key) -> field.
ALIASES: Mapping[tuple[str, str], str] = {
    ("database", "dsn"): "pg_dsn",
    ("paths", "cache_dir"): "cache_dir",
    ("paths", "state_dir"): "state_root",
    ("paths", "recordings_dir"): "recordings_root",
    ("paths", "recording_keys_dir"): "recording_keys_root",
    ("paths", "sip_credentials_file"): "sip_credentials_path",
    ("paths", "audit_keys_dir"): "audit_keys_root",
    ("phones", "agents"): "agents",
    ("phones", "supervisors"): "supervisors",
    ("calling", "default_caller_id"): "caller_id",
    ("calling", "trunk_endpoint"): "trunk_endpoint",
    ("asterisk", "instance"): "instance",
    ("asterisk", "debian_mirror"): "debian_mirror",
    ("asterisk", "carrier_port"): "carrier_port",
    ("network", "external_address"): "external_address",
    ("network", "external_media_address"): "external_media_address",
    ("network", "local_nets"): "local_nets",
    ("network", "stun_server"): "stun_server",
    ("sip", "bind"): "sip_bind",
    ("sip", "srtp"): "sip_srtp",
    ("wss", "enabled"): "wss",
    ("wss", "bind"): "wss_bind",
    ("wss", "port"): "wss_port",
    ("wss", "public_url"): "ws_public_url",
}
LISTS = ("trunks", "caller_ids", "dids", "nodes")


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in fields(Settings) if f.init}


def secret_fields() -> frozenset[str]:
    """The fields holding secrets (never shown: `repr=False`)."""
    return frozenset(f.name for f in fields(Settings) if not f.repr)


def _coerce(name: str, value: object, kind: Any, where: str) -> object:
    """`value` (from TOML or an environment string) as the field's type; SettingsError naming `where`."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        raise SettingsError(f"{where} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise SettingsError(f"{where} must be a whole number, got {value!r}")
        try:
            number = int(value) if isinstance(value, int | str) else int("x")
        except ValueError:
            raise SettingsError(f"{where} must be a whole number, got {value!r}") from None
        if name.endswith("_port") and not 0 < number < 65536:
            raise SettingsError(f"{where} must be a port between 1 and 65535, got {number}")
        return number
    if kind is float:
        try:
            return float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else float("x")
        except ValueError:
            raise SettingsError(f"{where} must be a number, got {value!r}") from None
    if kind is Path:
        if not isinstance(value, str):
            raise SettingsError(f"{where} must be a path (a string), got {value!r}")
        return Path(value).expanduser()
    if kind == tuple[str, ...]:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise SettingsError(f"{where} must be a list of strings, got {value!r}")
    if kind is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SettingsError(f"{where} must be a string, got {value!r}")
        return str(value)
    raise SettingsError(f"{where} cannot be set here")


def read_secret_file(path: str, where: str) -> str:
    """The secret a file holds (trailing newlines removed); SettingsError naming `where` if unreadable."""
    try:
        text = Path(path).expanduser().read_text()
    except OSError as error:
        raise SettingsError(f"{where} names {path}, which cannot be read ({error.strerror}): create it "
                            "(mode 0600) or fix the path") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise SettingsError(f"{where} names {path}, which is empty: put the secret in it")
    return secret


# ---- the file ----------------------------------------------------------------------------------
def config_path(env: Mapping[str, str]) -> Path | None:
    """The configuration file to read: DIALER_CONFIG (empty: none), else the default one if present."""
    if "DIALER_CONFIG" in env:
        value = env["DIALER_CONFIG"].strip()
        return Path(value).expanduser() if value else None
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def read_config_file(path: Path) -> dict[str, object]:
    """Settings fields from a TOML file (secret `*_file` keys read, lists of tables parsed)."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsError(f"The configuration file {path} does not exist: write one with "
                            f"'dialer config init --path {path}', or unset DIALER_CONFIG") from None
    except OSError as error:
        raise SettingsError(f"The configuration file {path} cannot be read ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from None
    return parse_config(data, str(path))


def parse_config(data: Mapping[str, object], source: str = "the configuration") -> dict[str, object]:
    types = _field_types()
    secrets = secret_fields()
    values: dict[str, object] = {}

    def put(name: str, value: object, where: str) -> None:
        if name in values:
            raise SettingsError(f"{source}: {where} sets {name} a second time")
        values[name] = _coerce(name, value, types[name], f"{source}: {where}")

    for key, value in data.items():
        if key in LISTS:
            if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
                raise SettingsError(f"{source}: {key} must be written as [[{key}]] tables")
            values[key] = tuple(_parse_list_item(key, item, f"{source}: [[{key}]] #{n}")
                                for n, item in enumerate(value, 1))
        elif isinstance(value, dict):
            for sub, item in value.items():
                where = f"[{key}] {sub}"
                if isinstance(item, dict):
                    raise SettingsError(f"{source}: {where} is a table; settings go one level deep")
                if sub.endswith("_file") and (name := _resolve(key, sub.removesuffix("_file"), types)) in secrets:
                    put(name, read_secret_file(_string(item, f"{source}: {where}"), f"{source}: {where}"), where)
                    continue
                name = _resolve(key, sub, types)
                if name is None:
                    raise SettingsError(f"{source}: unknown setting {where} ('dialer config init' writes every one)")
                put(name, item, where)
        else:
            if key.endswith("_file") and key.removesuffix("_file") in secrets:
                name = key.removesuffix("_file")
                put(name, read_secret_file(_string(value, f"{source}: {key}"), f"{source}: {key}"), key)
                continue
            if key not in types or key in LISTS or key == "config_file":
                raise SettingsError(f"{source}: unknown setting {key} ('dialer config init' writes every one)")
            put(key, value, key)
    return values


def _resolve(table: str, key: str, types: Mapping[str, object]) -> str | None:
    alias = ALIASES.get((table, key))
    if alias is not None:
        return alias
    name = f"{table}_{key}"
    return name if name in types and name not in LISTS and name != "config_file" else None


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{where} must be a string, got {value!r}")
    return value


def _parse_list_item(kind: str, item: Mapping[str, object], where: str) -> object:
    """One [[trunks]], [[caller_ids]] or [[dids]] table as its dataclass."""
    allowed: dict[str, type]
    if kind == "trunks":
        allowed = {"name": str, "host": str, "port": int, "transport": str, "auth": str, "username": str,
                   "password": str, "register": bool, "realm": str, "from_domain": str, "from_user": str,
                   "codecs": list, "calls_per_second": float, "max_channels": int, "srtp": bool,
                   "verify_certificate": bool, "ca_file": str, "match": list, "qualify_seconds": int}
    elif kind == "caller_ids":
        allowed = {"number": str, "owner": str, "vouched_by": str, "vouched_on": dt.date, "answered_by": str,
                   "name": str}
    elif kind == "nodes":
        allowed = {"name": str, "ari_url": str, "ari_user": str, "ari_password": str, "max_calls": int,
                   "max_setups": int, "setups_per_second": int}
    else:
        allowed = {"number": str, "campaign": str}
    values: dict[str, object] = {}
    for key, value in item.items():
        if kind == "trunks" and key == "password_file":
            values["password"] = read_secret_file(_string(value, f"{where} password_file"), f"{where} password_file")
            continue
        if kind == "nodes" and key == "ari_password_file":
            values["ari_password"] = read_secret_file(_string(value, f"{where} ari_password_file"),
                                                      f"{where} ari_password_file")
            continue
        expected = allowed.get(key)
        if expected is None:
            raise SettingsError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(allowed))})")
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is dt.date and isinstance(value, dt.datetime):
            value = value.date()
        if expected is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SettingsError(f"{where}: {key} must be a list of strings")
            value = tuple(value)
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise SettingsError(f"{where}: {key} must be {_kind_name(expected)}, got {value!r}")
        values[key] = value
    try:
        if kind == "trunks":
            if "transport" in values:
                values["transport"] = Transport(str(values["transport"]).lower())
            if "auth" in values:
                values["auth"] = TrunkAuth(str(values["auth"]).lower())
            return Trunk(**values)  # type: ignore[arg-type]
        if kind == "caller_ids":
            return CallerIdRecord(**values)  # type: ignore[arg-type]
        if kind == "nodes":
            return AriNode(**values)  # type: ignore[arg-type]
        return DidRoute(**values)  # type: ignore[arg-type]
    except ValueError as error:
        if kind == "nodes":
            raise SettingsError(f"{where}: {error}") from None
        raise SettingsError(f"{where}: {error} (transport: udp, tcp or tls; auth: digest or ip)") from None
    except TypeError:
        missing = {"trunks": "name and host", "caller_ids": "number, owner and vouched_by",
                   "dids": "number and campaign", "nodes": "name and ari_url"}[kind]
        raise SettingsError(f"{where} needs at least {missing}") from None


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
            dt.date: "a date (2026-03-01)"}.get(kind, kind.__name__)


# ---- everything together -------------------------------------------------------------------------
def environment_values(env: Mapping[str, str]) -> dict[str, object]:
    """Settings fields from `DIALER_*` variables (and `DIALER_*_FILE` for secrets)."""
    types = _field_types()
    secrets = secret_fields()
    values: dict[str, object] = {}
    for variable, name in ENVIRONMENT.items():
        raw = env.get(variable)
        from_file = env.get(f"{variable}_FILE") if name in secrets else None
        if from_file:
            values[name] = read_secret_file(from_file, f"{variable}_FILE")
        if raw is None or raw == "":
            continue
        values[name] = _coerce(name, raw, types[name], variable)
    return values


def setting_sources(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each field set by the file or the environment came from (`dialer config check`)."""
    env = os.environ if env is None else env
    sources: dict[str, str] = {}
    path = config_path(env)
    if path is not None:
        for name in read_config_file(path):
            sources[name] = str(path)
    variables = {name: variable for variable, name in ENVIRONMENT.items()}
    for name in environment_values(env):
        variable = variables[name]
        sources[name] = f"{variable}_FILE" if env.get(f"{variable}_FILE") and not env.get(variable) else variable
    return sources


def from_environment(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings: defaults < the configuration file < `DIALER_*` variables < `overrides`.

    `env` defaults to the process environment; an explicit mapping (``{}`` in tests) is used
    alone, and the file is read only if it names one with DIALER_CONFIG.
    """
    process = env is None
    env = os.environ if env is None else env
    path = config_path(env) if process or "DIALER_CONFIG" in env else None
    values: dict[str, object] = {}
    if path is not None:
        values.update(read_config_file(path))
        values["config_file"] = str(path)
    values.update(environment_values(env))
    values.update(overrides)
    trunks = values.get("trunks", ())
    if trunks and "trunk_endpoint" not in values and isinstance(trunks, tuple):
        values["trunk_endpoint"] = trunks[0].name
    return Settings(**values)  # type: ignore[arg-type]
