"""Typed configuration, built once in the entry point from the environment.

Nothing deeper in the code reads the environment: it receives a `Settings`.
Secrets never appear in `repr` or in logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dialer"


# ARI listens on 127.0.0.1 only; this default is for development, and is announced at start.
DEVELOPMENT_ARI_PASSWORD = "dialer-dev-secret"


@dataclass(frozen=True)
class Settings:
    """Every knob of the engine, with the environment variable that sets it.

    | variable | field | default |
    """

    pg_dsn: str = "postgresql://postgres@127.0.0.1:5432/dialer"
    redis_url: str = "redis://127.0.0.1:6379/0"
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
    agents: int = 20
    supervisors: int = 5
    rtp_start: int = 10000
    rtp_end: int = 20000
    # Where durable local state lives (the CRM outbox); empty: cache_dir/state/<instance>.
    state_root: str = ""
    # Where finished call recordings are archived; empty: cache_dir/recordings.
    recordings_root: str = ""
    recording_keys_root: str = ""
    # The Ed25519 key signing the audit trail's checkpoints and evidence packets; empty:
    # state_dir/../audit-keys.
    audit_keys_root: str = ""
    # The phones' SIP credentials file (0600); empty: state_dir/sip-credentials.json.
    sip_credentials_path: str = ""
    caller_id: str = "+18885550100"
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
    texting_rate: float = 1.0
    texting_http_url: str = ""  # the provider's API base, e.g. https://api.example.com
    texting_http_account: str = ""
    texting_http_token: str = field(default="", repr=False)
    texting_webhook_url: str = ""  # this API's public base URL, as the provider calls it

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


# env var -> (field name, parser)
ENVIRONMENT: Mapping[str, str] = {
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
    "DIALER_AGENTS": "agents",
    "DIALER_SUPERVISORS": "supervisors",
    "DIALER_RECORDINGS_DIR": "recordings_root",
    "DIALER_RECORDING_KEYS_DIR": "recording_keys_root",
    "DIALER_AUDIT_KEYS_DIR": "audit_keys_root",
    "DIALER_CALLER_ID": "caller_id",
    "DIALER_TRUNK_ENDPOINT": "trunk_endpoint",
    "DIALER_NODE_MAX_CALLS": "node_max_calls",
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
}


def from_environment(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from `DIALER_*` variables; `overrides` win over the environment."""
    env = os.environ if env is None else env
    defaults = Settings()
    values: dict[str, object] = {}
    for variable, name in ENVIRONMENT.items():
        raw = env.get(variable)
        if raw is None or raw == "":
            continue
        current = getattr(defaults, name)
        if isinstance(current, bool):
            values[name] = raw.lower() in {"1", "true", "yes", "on"}
        elif isinstance(current, float):
            try:
                values[name] = float(raw)
            except ValueError:
                raise SettingsError(f"{variable} must be a number, got {raw!r}") from None
        elif isinstance(current, int):
            try:
                values[name] = int(raw)
            except ValueError:
                raise SettingsError(f"{variable} must be a whole number, got {raw!r}") from None
            if name.endswith("_port") and not 0 < int(raw) < 65536:
                raise SettingsError(f"{variable} must be a port between 1 and 65535, got {raw}")
        elif isinstance(current, Path):
            values[name] = Path(raw).expanduser()
        else:
            values[name] = raw
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
