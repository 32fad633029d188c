"""Per-endpoint SIP credentials: generated at provisioning, kept in one 0600 file, digests to Asterisk.

Each endpoint (``agent1001``, ``agent1001-web``, ``supervisor01``, ...) gets its own random
password the first time an instance is rendered; later renders keep it, so desk phones and
browsers stay registered across Asterisk restarts, and endpoints added later get new ones.

Where the passwords live, and why there:

* Asterisk gets only ``password_digest = MD5:md5(username:realm:password)`` (PJSIP digest
  authentication needs nothing more; MD5 because that is the digest algorithm browsers' SIP
  libraries and desk phones answer with). The digest is a password equivalent for this realm,
  but it is not the password, and it is useless in another realm.
* The plaintext is needed twice: by the console, which hands a signed-in agent the
  credentials of its browser endpoint (``sip_credentials``), and by whoever configures a desk
  phone (``dialer asterisk sip-credentials ENDPOINT``). It is kept in one JSON file, mode 0600,
  in the dialer's state directory (``DIALER_STATE_DIR``, ``sip-credentials.json``): the dialer
  process already owns that directory, it survives re-renders of the Asterisk configuration,
  and it is outside the Asterisk instance's directory, which belongs to the ``asterisk`` user.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dialer.provision.sip_endpoints import PhoneKind, Role, SipEndpoint

FILE_NAME = "sip-credentials.json"
FORMAT_VERSION = 1
PASSWORD_BYTES = 18  # 24 URL-safe characters, 144 bits


class CredentialsError(Exception):
    """The credentials file is missing, unreadable or does not name the endpoint; one sentence."""


def md5_digest(username: str, realm: str, password: str) -> str:
    """HA1 of RFC 2617/3261 digest authentication: what PJSIP's ``password_digest = MD5:...`` holds."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


@dataclass(frozen=True)
class SipLogin:
    """What a phone needs to register as one endpoint.

    `ws_url` is the SIP-over-WebSocket address for browser endpoints (None for desk phones,
    which register over UDP to `sip_uri`'s host and `udp_port`).
    """

    endpoint: str
    username: str
    password: str = field(repr=False)
    sip_uri: str
    ws_url: str | None
    udp_port: int | None
    tls_port: int | None = None  # SIP over TLS for desk phones, when the instance has it
    ice_servers: tuple[str, ...] = ()  # e.g. ("stun:stun.example.com:3478",): softphone.js `iceServers`

    def __iter__(self) -> Iterator[str | None]:
        """`username, password, ws_url = login`."""
        return iter((self.username, self.password, self.ws_url))


@dataclass(frozen=True)
class StoredCredential:
    role: Role
    kind: PhoneKind
    password: str = field(repr=False)


@dataclass(frozen=True)
class CredentialStore:
    """The instance's SIP credentials, as kept in its 0600 file."""

    path: Path
    realm: str
    sip_domain: str
    udp_port: int
    ws_url: str
    entries: Mapping[str, StoredCredential]
    tls_port: int | None = None
    ice_servers: tuple[str, ...] = ()

    # -- reading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> CredentialStore:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CredentialsError(
                f"No SIP credentials at {path}: provision the Asterisk instance first "
                "('dialer asterisk start' or 'dialer stack up')."
            ) from None
        except (OSError, ValueError) as error:
            raise CredentialsError(f"Cannot read the SIP credentials in {path}: {error}.") from None
        try:
            if data["version"] != FORMAT_VERSION:
                raise CredentialsError(f"{path} has credentials format {data['version']}, expected {FORMAT_VERSION}.")
            entries = {
                name: StoredCredential(Role(entry["role"]), PhoneKind(entry["kind"]), str(entry["password"]))
                for name, entry in data["endpoints"].items()
            }
            tls_port = data.get("tls_port")
            return cls(path, str(data["realm"]), str(data["sip_domain"]), int(data["udp_port"]),
                       str(data["ws_url"]), entries, int(tls_port) if tls_port else None,
                       tuple(str(url) for url in data.get("ice_servers", ())))
        except (KeyError, TypeError, ValueError) as error:
            raise CredentialsError(f"The SIP credentials file {path} is damaged ({error!r}); remove it and "
                                   "start the Asterisk instance again to generate new ones.") from None

    def login(self, endpoint: str) -> SipLogin:
        entry = self.entries.get(endpoint)
        if entry is None:
            raise CredentialsError(f"No SIP endpoint named {endpoint!r} in {self.path}.")
        return SipLogin(
            endpoint=endpoint,
            username=endpoint,
            password=entry.password,
            sip_uri=f"sip:{endpoint}@{self.sip_domain}",
            ws_url=self.ws_url if entry.kind is PhoneKind.WEBRTC else None,
            udp_port=self.udp_port if entry.kind is PhoneKind.DESKTOP else None,
            tls_port=self.tls_port if entry.kind is PhoneKind.DESKTOP else None,
            ice_servers=self.ice_servers if entry.kind is PhoneKind.WEBRTC else (),
        )

    def digests(self) -> dict[str, str]:
        """Endpoint name -> MD5 digest of its credential in this realm (what Asterisk is given)."""
        return {name: md5_digest(name, self.realm, entry.password) for name, entry in self.entries.items()}

    # -- provisioning --------------------------------------------------------------------------
    @classmethod
    def provision(
        cls,
        path: Path,
        plan: Iterable[SipEndpoint],
        *,
        realm: str,
        sip_domain: str,
        udp_port: int,
        ws_url: str,
        tls_port: int | None = None,
        ice_servers: tuple[str, ...] = (),
        generate: Callable[[], str] = new_password,
    ) -> CredentialStore:
        """The credentials for `plan`: those already in `path` kept, missing ones generated,
        endpoints no longer planned dropped; written back (0600) when anything changed."""
        previous: Mapping[str, StoredCredential] = {}
        if path.exists():
            with contextlib.suppress(CredentialsError):
                old = cls.load(path)
                # A digest depends on the realm: a changed realm keeps the passwords (the
                # digests are recomputed), so phones stay configured.
                previous = old.entries
        entries: dict[str, StoredCredential] = {}
        for endpoint in plan:
            kept = previous.get(endpoint.name)
            password = kept.password if kept is not None else generate()
            entries[endpoint.name] = StoredCredential(endpoint.role, endpoint.kind, password)
        store = cls(path, realm, sip_domain, udp_port, ws_url, entries, tls_port, ice_servers)
        store.write()
        return store

    def write(self) -> None:
        """Write the credentials file (0600) atomically."""
        data = {
            "version": FORMAT_VERSION,
            "realm": self.realm,
            "sip_domain": self.sip_domain,
            "udp_port": self.udp_port,
            "ws_url": self.ws_url,
            **({"tls_port": self.tls_port} if self.tls_port else {}),
            **({"ice_servers": list(self.ice_servers)} if self.ice_servers else {}),
            "endpoints": {
                name: {"role": entry.role.value, "kind": entry.kind.value, "password": entry.password}
                for name, entry in self.entries.items()
            },
        }
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        if self.path.exists():
            # Rewritten only when it changed, so a running console never reads a half-swapped file
            # for nothing; the mode is enforced every time.
            self.path.chmod(0o600)
            if self.path.read_text() == text:
                return
        write_private(self.path, text)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by its owner only (0600, folder 0700 if new)."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
        _give_to_folder_owner(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _give_to_folder_owner(path: Path) -> None:
    """Written by root (`dialer asterisk run` under systemd) into a folder the service user owns:
    the file is that user's, so `dialer serve` (as the user) can read it."""
    if os.geteuid() != 0:
        return
    folder = path.parent.stat()
    if folder.st_uid != 0:
        os.chown(path, folder.st_uid, folder.st_gid)


def sip_credentials(endpoint: str, path: Path) -> SipLogin:
    """The username, password and WebSocket URL a phone registers `endpoint` with.

    `path` is the instance's credentials file (``Settings.sip_credentials_file``, or
    ``AsteriskInstance.credentials_file``). Raises `CredentialsError` (one sentence) when the
    file or the endpoint is missing. The console calls this after an agent signs in and hands
    the result to that agent's page only.
    """
    return CredentialStore.load(path).login(endpoint)
