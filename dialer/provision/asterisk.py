"""Asterisk 22 for the dialer: find or build it, render our configuration, start and stop instances.

Two ways to have Asterisk (docs/decisions.md, decision 2):

* an ``asterisk`` of version 22 or newer on PATH (the "system" install), or
* a cached Debian sid root built with debootstrap, run with ``chroot``.

Several *instances* share one install: the developer's long-running one and each test run's,
each with its own rendered configuration, ports, run directory, spool and logs, so they never
collide. An instance lives under a base directory as Asterisk sees it (inside the chroot for a
cached root); ``AsteriskInstance.host_path`` maps such a path to where this process reads it.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from dialer.ari.auth import basic_auth
from dialer.provision.credentials import CredentialStore, SipLogin, sip_credentials, write_private
from dialer.provision.dtls import ensure_dtls_certificate
from dialer.provision.network import ipv4_interface_addresses
from dialer.provision.ports import port_taken
from dialer.provision.sip_endpoints import (
    SipEndpoint,
    agent_endpoint,
    endpoint_plan,
    pjsip_edge_sections,
    pjsip_sections,
)
from dialer.provision.transports import (
    NetworkPlan,
    acl_section,
    desk_phone_options,
    http_tls,
    pjsip_transports,
    rtp_ice_candidates,
    rtp_options,
    strip_development_blocks,
    webrtc_media_options,
)
from dialer.provision.trunks import (
    DidRoute,
    Transport,
    Trunk,
    carrier_networks,
    inbound_dialplan,
    pjsip_trunk_sections,
)
from dialer.settings import Settings

MINIMUM_MAJOR_VERSION = 22
CONFIG_DIR = Path(__file__).resolve().parents[2] / "asterisk-config"
CONFIG_FILES = (
    "asterisk.conf",
    "modules.conf",
    "logger.conf",
    "http.conf",
    "ari.conf",
    "rtp.conf",
    "manager.conf",
    "cdr.conf",
    "cel.conf",
    "musiconhold.conf",
    "stasis.conf",
    "pjsip.conf",
    "extensions.conf",
)
DEBOOTSTRAP_PACKAGES = "asterisk,asterisk-modules,asterisk-config"


class ProvisionError(Exception):
    """The stack cannot be brought up; the message is one sentence saying what to do."""


@dataclass(frozen=True)
class AsteriskInstall:
    """Where an Asterisk binary lives and how to run it."""

    root: Path
    version: str
    moddir: str
    datadir: str

    @property
    def chrooted(self) -> bool:
        return self.root != Path("/")

    @property
    def major_version(self) -> int:
        return _major(self.version)

    def command(self, *args: str) -> list[str]:
        if self.chrooted:
            return ["chroot", str(self.root), "asterisk", *args]
        return ["asterisk", *args]

    def host_path(self, inside: PurePosixPath | str) -> Path:
        inside = PurePosixPath(inside)
        return self.root / inside.relative_to("/") if self.chrooted else Path(inside)


def _major(version: str) -> int:
    match = re.search(r"(\d+)\.", version)
    return int(match.group(1)) if match else 0


def _asterisk_version(command: list[str]) -> str | None:
    try:
        result = subprocess.run([*command, "-V"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = result.stdout.strip()
    return text.removeprefix("Asterisk ").strip() if result.returncode == 0 and text else None


def _directories(conf: Path) -> tuple[str, str]:
    """astmoddir and astdatadir from an install's own asterisk.conf (Debian layout by default)."""
    moddir, datadir = "/usr/lib/x86_64-linux-gnu/asterisk/modules", "/usr/share/asterisk"
    if conf.is_file():
        parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=>", "="))
        try:
            parser.read_string(re.sub(r"\[directories\]\(!\)", "[directories]", conf.read_text()))
            section = parser["directories"]
            moddir = section.get("astmoddir", moddir).split(";")[0].strip()
            datadir = section.get("astdatadir", datadir).split(";")[0].strip()
        except (configparser.Error, KeyError):
            pass
    return moddir, datadir


def find_system_install() -> AsteriskInstall | None:
    """An ``asterisk`` 22+ on PATH, if there is one."""
    if shutil.which("asterisk") is None:
        return None
    version = _asterisk_version(["asterisk"])
    if version is None or _major(version) < MINIMUM_MAJOR_VERSION:
        return None
    moddir, datadir = _directories(Path("/etc/asterisk/asterisk.conf"))
    return AsteriskInstall(root=Path("/"), version=version, moddir=moddir, datadir=datadir)


def find_cached_root(settings: Settings) -> AsteriskInstall | None:
    root = settings.asterisk_root
    if not (root / "usr/sbin/asterisk").exists():
        return None
    if os.geteuid() != 0:
        raise ProvisionError(
            f"Asterisk is cached in {root} but running it needs root: run this command as root (or with sudo)."
        )
    version = _asterisk_version(["chroot", str(root), "asterisk"])
    if version is None:
        raise ProvisionError(
            f"The cached Asterisk root {root} is broken: remove it (rm -rf {root}) and run again to rebuild it."
        )
    moddir, datadir = _directories(root / "etc/asterisk/asterisk.conf")
    return AsteriskInstall(root=root, version=version, moddir=moddir, datadir=datadir)


def build_root(settings: Settings, say: Callable[[str], None] = print) -> AsteriskInstall:
    """Build the Debian sid root with debootstrap (about 45 s and 500 MB), atomically."""
    root = settings.asterisk_root
    if os.geteuid() != 0:
        raise ProvisionError(
            "Asterisk 22 is not installed and building it needs root: run as root (or with sudo), "
            "or install Asterisk 22 or newer on PATH."
        )
    if shutil.which("debootstrap") is None:
        raise ProvisionError(
            "debootstrap is not installed: run 'apt-get install -y debootstrap' "
            "(scripts/bootstrap.sh does this), or install Asterisk 22 or newer on PATH."
        )
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        _unmount_proc(partial)
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    say(f"Building the Asterisk root in {root} with debootstrap (about a minute, once)...")
    command = ["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}", "sid", str(partial)]
    if settings.debian_mirror:
        command.append(settings.debian_mirror)
    log = root.with_name(root.name + ".debootstrap.log")
    with log.open("w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise ProvisionError(
            f"debootstrap failed (exit {result.returncode}); see {log}. "
            "Check that Debian's package mirror is reachable or set DIALER_DEBIAN_MIRROR."
        )
    partial.rename(root)
    install = find_cached_root(settings)
    if install is None or install.major_version < MINIMUM_MAJOR_VERSION:
        raise ProvisionError(f"The built root has no Asterisk {MINIMUM_MAJOR_VERSION}+; see {log}.")
    say(f"Asterisk {install.version} is ready in {root}.")
    return install


def ensure_install(settings: Settings, say: Callable[[str], None] = print) -> AsteriskInstall:
    """The Asterisk to use: system 22+ on PATH, else the cached root, else build the root."""
    return find_system_install() or find_cached_root(settings) or build_root(settings, say)


def _unmount_proc(root: Path) -> None:
    proc = root / "proc"
    if os.path.ismount(proc):
        subprocess.run(["umount", "-l", str(proc)], check=False, capture_output=True)


def _ensure_proc(root: Path) -> None:
    proc = root / "proc"
    if os.path.ismount(proc):
        return
    proc.mkdir(exist_ok=True)
    result = subprocess.run(["mount", "-t", "proc", "proc", str(proc)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ProvisionError(f"Cannot mount /proc in {root}: {result.stderr.strip()}")


def _passwd_ids(root: Path, user: str) -> tuple[int, int] | None:
    passwd = root / "etc/passwd"
    if not passwd.is_file():
        return None
    for line in passwd.read_text().splitlines():
        parts = line.split(":")
        if len(parts) > 3 and parts[0] == user:
            return int(parts[2]), int(parts[3])
    return None


@dataclass(frozen=True)
class InstanceConfig:
    """What an instance was rendered with; saved next to it so stop/status know it later."""

    name: str
    ari_port: int
    sip_port: int
    carrier_port: int
    ari_user: str
    ari_password: str = field(repr=False)
    ari_app: str = "dialer"
    agents: int = 20
    supervisors: int = 5
    rtp_start: int = 10000
    rtp_end: int = 20000
    # The 0600 file of the phones' SIP credentials, as this process sees it (credentials.py).
    credentials_file: str = ""
    # Agents from anywhere and carriers (dialer/provision/transports.py, trunks.py); the
    # certificate files are as this process sees them and are copied into the instance.
    development: bool = True
    sip_bind: str = "127.0.0.1"
    sip_tls: bool = False
    sip_tls_port: int = 5061
    sip_domain: str = "127.0.0.1"
    sip_srtp: bool = False
    sip_permit: tuple[str, ...] = ()
    external_address: str = ""
    external_media_address: str = ""
    local_nets: tuple[str, ...] = ()
    stun_server: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    wss: bool = False
    wss_bind: str = ""
    wss_port: int = 8089
    ws_url: str = ""
    trunks: tuple[Trunk, ...] = ()
    dids: tuple[DidRoute, ...] = ()
    # A node of a cluster: the SIP edge (Kamailio, dialer/provision/kamailio.py) on this UDP port
    # of sip_bind, where desk phones register and carriers' calls enter; 0: no edge (one node).
    edge_sip_port: int = 0
    # The edge's SIP-over-WebSocket TCP port: browser phones register there too, and this
    # node rings their endpoints through the edge; 0: browsers connect to this node's own /ws.
    edge_ws_port: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> InstanceConfig:
        values: dict[str, object] = {
            "development": settings.development,
            "sip_bind": settings.sip_bind,
            "sip_tls": settings.sip_tls,
            "sip_tls_port": settings.sip_tls_port,
            "sip_domain": settings.public_sip_host,
            "sip_srtp": settings.sip_srtp,
            "sip_permit": settings.sip_permit,
            "external_address": settings.external_address,
            "external_media_address": settings.external_media_address,
            "local_nets": settings.local_nets,
            "stun_server": settings.stun_server,
            "tls_cert_file": settings.tls_cert_file,
            "tls_key_file": settings.tls_key_file,
            "tls_ca_file": settings.tls_ca_file,
            "wss": settings.wss,
            "wss_bind": settings.wss_bind,
            "wss_port": settings.wss_port,
            "ws_url": settings.ws_url if settings.wss or settings.ws_public_url else "",
            "trunks": settings.trunks,
            "dids": settings.dids,
            "name": settings.instance,
            "ari_port": settings.ari_port,
            "sip_port": settings.sip_port,
            "carrier_port": settings.carrier_port,
            "ari_user": settings.ari_user,
            "ari_password": settings.ari_password,
            "ari_app": settings.ari_app,
            "agents": settings.agents,
            "supervisors": settings.supervisors,
            "rtp_start": settings.rtp_start,
            "rtp_end": settings.rtp_end,
            "credentials_file": str(settings.sip_credentials_file),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


SIP_REALM = "dialer"
# The address phones reach Asterisk at in development (design.md, decision 2); a deployment
# sets its own (Settings.public_sip_host: sip_domain, else the external or bind address).
SIP_DOMAIN = "127.0.0.1"
# Where the system's CA bundle is, copied into an instance that verifies carriers' certificates
# without a CA file of its own (a cached Debian root has none).
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class AsteriskInstance:
    """One running (or runnable) Asterisk with its own configuration, ports and directories."""

    def __init__(self, install: AsteriskInstall, config: InstanceConfig, base: PurePosixPath,
                 templates: Mapping[str, str] | None = None) -> None:
        self.install = install
        self.config = config
        self.base = base
        # Configuration files rendered from these texts instead of asterisk-config/ (a test's
        # second Asterisk playing a carrier); same placeholders.
        self.templates = dict(templates or {})
        # Kept so the child is reaped when we stop it (a process started by an earlier
        # command is found through its pid file instead).
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_settings(cls, install: AsteriskInstall, settings: Settings, *,
                     templates: Mapping[str, str] | None = None, **overrides: object) -> AsteriskInstance:
        config = InstanceConfig.from_settings(settings, **overrides)
        if install.chrooted:
            base = PurePosixPath("/var/lib/dialer/instances") / config.name
        else:
            base = PurePosixPath(str(settings.cache_dir / "instances" / config.name))
        return cls(install, config, base, templates)

    # -- paths -------------------------------------------------------------------------------
    def host_path(self, inside: PurePosixPath | str) -> Path:
        return self.install.host_path(inside)

    @property
    def host_base(self) -> Path:
        return self.host_path(self.base)

    @property
    def recording_dir(self) -> Path:
        """Where ``/recordings/stored`` files land, as this process sees it."""
        return self.host_path(self.base / "spool" / "recording")

    @property
    def checks_dir(self) -> Path:
        return self.host_path(self.base / "checks")

    @property
    def texts_dir(self) -> Path:
        """Where the simulated network's phones log the texts they receive and send (one
        `+1NNNNNNNNNN.log` per phone: `epoch|received|sent|from|message id|base64 body`)."""
        return self.host_path(self.base / "texts")

    @property
    def log_file(self) -> Path:
        return self.host_path(self.base / "log" / "console.log")

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.config.ari_port}/ari"

    @property
    def edge(self) -> str:
        """The cluster's SIP edge as HOST:PORT ("" for a node on its own)."""
        if not self.config.edge_sip_port:
            return ""
        host = self.config.sip_bind if self.config.sip_bind not in ("", "0.0.0.0") else SIP_DOMAIN
        return f"{host}:{self.config.edge_sip_port}"

    @property
    def ws_url(self) -> str:
        """Where browsers' phones connect: SIP over WebSocket on Asterisk's HTTP server (wss://
        on its HTTPS server when the instance has it)."""
        if self.config.edge_ws_port:
            # A node of a cluster whose edge carries WebSocket: browsers register at the edge
            # (or at a TLS proxy in front of it: ws_url is then only [wss] public_url).
            return self.config.ws_url or f"ws://{self.edge.rpartition(':')[0]}:{self.config.edge_ws_port}/ws"
        return self.config.ws_url or f"ws://{SIP_DOMAIN}:{self.config.ari_port}/ws"

    @property
    def keys_dir(self) -> PurePosixPath:
        """TLS certificate, key and trusted CAs, as Asterisk sees them (copied at render, 0600)."""
        return self.base / "keys"

    @property
    def security_log(self) -> Path:
        """Asterisk's security events (failed registrations, ACL refusals): fail2ban reads it."""
        return self.host_path(self.base / "log" / "security.log")

    def network_plan(self) -> NetworkPlan:
        config = self.config
        tls_trunks = [trunk for trunk in config.trunks if trunk.transport is Transport.TLS]
        return NetworkPlan(
            development=config.development, sip_bind=config.sip_bind, sip_port=config.sip_port,
            sip_tls=config.sip_tls, sip_tls_port=config.sip_tls_port, sip_srtp=config.sip_srtp,
            external_address=config.external_address, external_media_address=config.external_media_address,
            local_nets=config.local_nets, stun_server=config.stun_server, wss=config.wss,
            wss_bind=config.wss_bind, wss_port=config.wss_port,
            trunk_transports=frozenset(trunk.transport for trunk in config.trunks),
            verify_carriers=all(trunk.verify_certificate for trunk in tls_trunks),
            tls_cert=str(self.keys_dir / "tls.crt") if config.tls_cert_file else "",
            tls_key=str(self.keys_dir / "tls.key") if config.tls_key_file else "",
            ca_bundle=str(self.keys_dir / "carrier-ca.pem") if self._carrier_cas() else "",
        )

    def _carrier_cas(self) -> list[Path]:
        """The CA files trusted for carriers' certificates: those configured, else the system's."""
        config = self.config
        if not config.sip_tls:
            return []
        named = [config.tls_ca_file] + [trunk.ca_file for trunk in config.trunks if trunk.transport is Transport.TLS]
        files = [Path(name).expanduser() for name in named if name]
        if not files and SYSTEM_CA_BUNDLE.is_file():
            files = [SYSTEM_CA_BUNDLE]
        return files

    def _copy_keys(self) -> None:
        """The TLS certificate, key and trusted CAs copied where Asterisk reads them (0600)."""
        keys = self.host_path(self.keys_dir)
        config = self.config
        copies = {"tls.crt": config.tls_cert_file, "tls.key": config.tls_key_file}
        for name, source in copies.items():
            if source:
                try:
                    write_private(keys / name, Path(source).expanduser().read_text())
                except OSError as error:
                    raise ProvisionError(f"Cannot read {source} ({error.strerror}): fix [tls] cert_file / "
                                         "key_file ('dialer config check' checks them).") from None
        cas = self._carrier_cas()
        if cas:
            try:
                bundle = "".join(path.read_text().rstrip("\n") + "\n" for path in cas)
            except OSError as error:
                raise ProvisionError(f"Cannot read the CA file {error.filename} ({error.strerror}): fix "
                                     "[tls] ca_file or the trunk's ca_file.") from None
            write_private(keys / "carrier-ca.pem", bundle)

    @property
    def credentials_file(self) -> Path:
        return Path(self.config.credentials_file)

    @property
    def dtls_dir(self) -> PurePosixPath:
        """The DTLS certificate and key, as Asterisk sees them (owned by its user, key 0600)."""
        return self.base / "keys"

    def sip_endpoints(self) -> list[SipEndpoint]:
        """Every phone endpoint of this instance: agents' and supervisors', desktop and browser."""
        return endpoint_plan(self.config.agents, self.config.supervisors)

    def agent_endpoints(self) -> list[str]:
        """The agents' desktop endpoints (agent1001, ...)."""
        return [agent_endpoint(number) for number in range(1, self.config.agents + 1)]

    def sip_credentials(self, endpoint: str) -> SipLogin:
        """The credentials of one of this instance's endpoints (after it was rendered)."""
        return sip_credentials(endpoint, self.credentials_file)

    # -- configuration -----------------------------------------------------------------------
    def render(self) -> None:
        """Write our asterisk-config/ into the instance, with this instance's values."""
        base = self.host_base
        for sub in ("etc", "run", "spool/recording", "log", "db", "cache", "checks", "sounds", "texts"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        shutil.copytree(CONFIG_DIR / "sounds", base / "sounds", dirs_exist_ok=True)
        # The install's stock files give every module we do not configure its defaults
        # (amd.conf, features.conf, indications.conf, ...); ours are written over them.
        stock = self.install.host_path("/etc/asterisk")
        if stock.is_dir():
            shutil.copytree(stock, base / "etc", dirs_exist_ok=True, symlinks=True)
        self._copy_keys()
        plan = self.network_plan()
        interfaces = ipv4_interface_addresses()
        values = {
            "SIP_BIND": plan.sip_bind,
            "TRANSPORTS": pjsip_transports(plan),
            "DESK_PHONE_OPTIONS": desk_phone_options(plan),
            "WEBRTC_MEDIA": webrtc_media_options(plan),
            "TRUNKS": pjsip_trunk_sections(self.config.trunks),
            "SIP_ACL": acl_section([*self.config.sip_permit, *carrier_networks(self.config.trunks)]
                                   if self.config.sip_permit else ()),
            "DIDS": inbound_dialplan(self.config.dids, self.config.ari_app),
            "HTTP_TLS": http_tls(plan),
            "RTP_OPTIONS": rtp_options(plan),
            "BASE": str(self.base),
            "MODDIR": self.install.moddir,
            "DATADIR": self.install.datadir,
            "INSTANCE": self.config.name,
            "ARI_PORT": str(self.config.ari_port),
            "SIP_PORT": str(self.config.sip_port),
            "CARRIER_PORT": str(self.config.carrier_port),
            "ARI_USER": self.config.ari_user,
            "ARI_PASSWORD": self.config.ari_password,
            "ARI_APP": self.config.ari_app,
            "RTP_START": str(self.config.rtp_start),
            "RTP_END": str(self.config.rtp_end),
            "SOUNDS": str(self.base / "sounds"),
            "CHECKS": str(self.base / "checks"),
            "TEXTS": str(self.base / "texts"),
            "SIP_REALM": SIP_REALM,
            "MEDIA_ADDRESS": plan.local_media_address or SIP_DOMAIN,
            "ICE_HOST_CANDIDATES": rtp_ice_candidates(plan, interfaces),
            "DTLS_CERT": str(self.dtls_dir / "dtls.crt"),
            "DTLS_KEY": str(self.dtls_dir / "dtls.key"),
            "ENDPOINTS": self._endpoint_sections(),
            "EDGE": pjsip_edge_sections(self.edge) if self.edge else "",
        }
        for name in CONFIG_FILES:
            text = self.templates.get(name) or (CONFIG_DIR / name).read_text()
            text = strip_development_blocks(text, self.config.development)
            rendered = re.sub(r"@@([A-Z_]+)@@", lambda m: values[m.group(1)], text)
            target = base / "etc" / name
            target.write_text(rendered)
            target.chmod(0o600)  # ARI's password and the phones' digests: Asterisk's user only
        state = base / "instance.json"
        described = {key: value for key, value in asdict(self.config).items() if key not in {"ari_password", "trunks"}}
        described["trunks"] = [trunk.name for trunk in self.config.trunks]
        state.write_text(json.dumps(described, indent=2, default=str))
        state.chmod(0o600)
        # Asterisk runs as its own user (-U asterisk): in the cached root always, and for a
        # system install when started as root (the systemd unit): the files are that user's.
        if self.install.chrooted or os.geteuid() == 0:
            ids = _passwd_ids(self.install.root, "asterisk")
            if ids is not None:
                for path in [base, *base.rglob("*")]:
                    os.chown(path, *ids, follow_symlinks=False)

    def _endpoint_sections(self) -> str:
        """The phones' PJSIP sections, with credentials (kept or generated) and the DTLS certificate."""
        if not self.config.credentials_file:
            raise ProvisionError("The instance has no SIP credentials file configured (InstanceConfig.credentials_file).")
        plan = self.sip_endpoints()
        store = CredentialStore.provision(
            self.credentials_file, plan, realm=SIP_REALM, sip_domain=self.config.sip_domain or SIP_DOMAIN,
            udp_port=self.config.edge_sip_port or self.config.sip_port, ws_url=self.ws_url,
            tls_port=self.config.sip_tls_port if self.config.sip_tls else None,
            ice_servers=(f"stun:{self.config.stun_server}",) if self.config.stun_server else (),
        )
        keys = self.host_path(self.dtls_dir)
        ensure_dtls_certificate(keys / "dtls.crt", keys / "dtls.key", f"dialer-engine {self.config.name}",
                                datetime.now(UTC))
        return pjsip_sections(plan, store.digests(), SIP_REALM, edge=self.edge,
                              browsers_at_edge=bool(self.config.edge_ws_port))

    # -- life cycle ----------------------------------------------------------------------------
    def _asterisk_args(self, *args: str) -> list[str]:
        conf = str(self.base / "etc" / "asterisk.conf")
        user = ["-U", "asterisk", "-G", "asterisk"] if self.install.chrooted else []
        return self.install.command("-C", conf, *user, *args)

    def pid(self) -> int | None:
        pidfile = self.host_path(self.base / "run" / "asterisk.pid")
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def ari_answers(self, timeout: float = 2.0) -> str | None:
        """The Asterisk version ARI reports, or None when ARI does not answer."""
        request = urllib.request.Request(f"{self.ari_url}/asterisk/info")
        request.add_header("Authorization", basic_auth(self.config.ari_user, self.config.ari_password))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                info = json.loads(response.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None
        version = info.get("system", {}).get("version")
        return str(version) if version else None

    def start(self, timeout: float = 60.0) -> None:
        """Render the configuration, start Asterisk in the background and wait until ARI answers."""
        if self.pid() is not None and self.ari_answers():
            if not self.credentials_file.exists():
                # Rendered by an older version (one shared agent password) or with another
                # DIALER_STATE_DIR: the phones' credentials are not where this process looks.
                raise ProvisionError(
                    f"Asterisk instance {self.config.name} is running without the phones' SIP credentials in "
                    f"{self.credentials_file}: restart it ('dialer stack down', then 'dialer stack up') to "
                    "generate them."
                )
            return
        if taken := self.taken_ports_sentence():
            raise ProvisionError(taken)
        self.render()
        if self.install.chrooted:
            _ensure_proc(self.install.root)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = self._process = subprocess.Popen(
                self._asterisk_args("-f", "-n", "-g"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ProvisionError(
                    f"Asterisk exited at start (status {process.returncode}): {self._log_tail()} "
                    f"(full log: {self.log_file})"
                )
            if self.ari_answers(timeout=1.0):
                return
            time.sleep(0.2)
        self.stop()
        raise ProvisionError(f"ARI did not answer within {timeout:.0f} s on {self.ari_url}; see {self.log_file}.")

    def taken_ports_sentence(self) -> str | None:
        """One sentence naming this instance's ARI and SIP ports another program holds, or None.

        Asked before a new Asterisk is started: it would fail to bind them, and its ARI would
        never answer. A stopped Asterisk (stop() waits until its process is gone) holds nothing."""
        config = self.config
        taken = [(f"{port} ({label})", setting) for label, host, port, kind, setting in (
            ("ARI, TCP", "127.0.0.1", config.ari_port, socket.SOCK_STREAM, "DIALER_ARI_PORT"),
            ("SIP, UDP", config.sip_bind or "0.0.0.0", config.sip_port, socket.SOCK_DGRAM, "DIALER_SIP_PORT"),
        ) if port_taken(host, port, kind)]
        if not taken:
            return None
        ports = " and ".join(port for port, _ in taken)
        settings = ", ".join(f"{setting}=..." for _, setting in taken)
        return (f"Another program holds Asterisk instance {config.name}'s {'ports' if len(taken) > 1 else 'port'} "
                f"{ports}: stop it, or move the instance to other ports ({settings}).")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(text[-lines:])

    def run_foreground(self) -> None:
        """Render, then become Asterisk in the foreground (a systemd service's main process)."""
        self.render()
        if self.install.chrooted:
            _ensure_proc(self.install.root)
        args = self._asterisk_args("-f", "-n", "-g")
        if not self.install.chrooted and os.geteuid() == 0 and _passwd_ids(Path("/"), "asterisk"):
            args = [*args[:1], "-U", "asterisk", "-G", "asterisk", *args[1:]]
        os.execvp(args[0], args)

    def stop(self, timeout: float = 15.0, *, gracefully: bool = False) -> None:
        """Stop Asterisk: ask it to stop now (or, `gracefully`, once its calls have ended, within
        `timeout`), then terminate, then kill."""
        pid = self.pid()
        if pid is None:
            self._reap()
            return
        if gracefully:
            # New calls are refused at once; the ones up finish (an upgrade without cutting calls).
            subprocess.run(self._asterisk_args("-rx", "core stop gracefully"), capture_output=True, timeout=10,
                           check=False)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process_alive(pid):
                time.sleep(0.5)
        try:
            subprocess.run(
                self._asterisk_args("-rx", "core stop now"), capture_output=True, timeout=10, check=False
            )
        except subprocess.TimeoutExpired:
            pass  # seen after a 409 on a duplicate channel id: fall through to SIGTERM, then SIGKILL
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    self._reap()
                    return
            deadline = time.monotonic() + timeout / 3
            while time.monotonic() < deadline:
                if not process_alive(pid):
                    self._reap()
                    return
                time.sleep(0.1)

    def _reap(self) -> None:
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None

    @contextlib.contextmanager
    def running(self, *, remove: bool = False) -> Iterator[AsteriskInstance]:
        """Started for the block, stopped after it (and its directories removed, if asked)."""
        self.start()
        try:
            yield self
        finally:
            self.stop()
            if remove:
                self.remove()

    def restart(self, timeout: float = 60.0) -> None:
        self.stop()
        self.start(timeout=timeout)

    def cli(self, command: str) -> str:
        """Run one Asterisk CLI command on this instance and return its output."""
        result = subprocess.run(
            self._asterisk_args("-rx", command), capture_output=True, text=True, timeout=20, check=False
        )
        return result.stdout

    def remove(self) -> None:
        """Delete the instance's directories (after stop)."""
        shutil.rmtree(self.host_base, ignore_errors=True)

    def remove_stale_siblings(self, prefix: str) -> list[str]:
        """Delete other instances named `prefix*` whose Asterisk no longer runs (left by killed runs)."""
        removed = []
        for sibling in sorted(self.host_base.parent.glob(f"{prefix}*")):
            if sibling == self.host_base or not sibling.is_dir():
                continue
            pidfile = sibling / "run" / "asterisk.pid"
            try:
                os.kill(int(pidfile.read_text().strip()), 0)
                continue  # still running: another test session's
            except (OSError, ValueError):
                pass
            shutil.rmtree(sibling, ignore_errors=True)
            removed.append(sibling.name)
        return removed


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a child of ours that exited is reaped; a zombie counts as gone)."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False
