"""Ask a carrier, from this host, whether a trunk's settings work: one clear sentence if not.

`probe_trunk` connects to the carrier the way Asterisk will (UDP, TCP or TLS, checking the
carrier's certificate against the same CAs), then:

* a digest trunk sends a REGISTER without a Contact (RFC 3261 10.2.3: it asks for the current
  bindings and changes none, so Asterisk's own registration is left alone) and answers the
  challenge with the trunk's username and password: 200 means the carrier accepts them;
* an IP-authenticated trunk sends an OPTIONS: any answer means the carrier is there (whether it
  lets our address call is known only by calling).

Why our own few lines of SIP: `dialer config check` and `dialer serve` need one request and
one challenge, synchronously, with the error told apart (no answer, refused, certificate,
password); no maintained pure-Python SIP library does that without a full user agent
(pjsua2 needs a compiled PJSIP; aiosip and python-sipsimple are unmaintained).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

from structlog.typing import FilteringBoundLogger as BoundLogger

from dialer.provision.trunks import Transport, Trunk, TrunkAuth

TIMEOUT = 5.0
T1 = 0.5  # RFC 3261 retransmission interval over UDP, doubled each time


@dataclass(frozen=True)
class ProbeResult:
    trunk: str
    ok: bool
    message: str  # one sentence: what works, or what is wrong and what to do
    status: int | None = None


@dataclass(frozen=True)
class SipResponse:
    status: int
    reason: str
    headers: dict[str, list[str]]

    def header(self, name: str) -> list[str]:
        return self.headers.get(name.lower(), [])


_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length"}


def parse_response(data: bytes) -> SipResponse | None:
    """A SIP response's status and headers (None if `data` is not a complete response head)."""
    head, separator, _ = data.partition(b"\r\n\r\n")
    if not separator:
        return None
    lines = head.decode("utf-8", "replace").split("\r\n")
    match = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", lines[0])
    if not match:
        return None
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            key = name.strip().lower()
            headers.setdefault(_COMPACT.get(key, key), []).append(value.strip())
    return SipResponse(int(match.group(1)), match.group(2), headers)


def _challenge_fields(value: str) -> dict[str, str]:
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "digest":
        return {}
    return {key.lower(): (quoted if quoted else plain) for key, quoted, plain in
            re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', rest)}


ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def digest_authorization(challenge: str, method: str, uri: str, username: str, password: str,
                         cnonce: str | None = None) -> str | None:
    """The Authorization header value answering a WWW-Authenticate Digest challenge (RFC 2617,
    RFC 8760 for SHA-256); None when the challenge uses an algorithm we do not know."""
    fields = _challenge_fields(challenge)
    algorithm = fields.get("algorithm", "MD5").upper()
    hasher = ALGORITHMS.get(algorithm)
    if hasher is None or "nonce" not in fields:
        return None

    def h(text: str) -> str:
        return hasher(text.encode(), usedforsecurity=False).hexdigest()

    realm, nonce = fields.get("realm", ""), fields["nonce"]
    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    qops = [q.strip() for q in fields.get("qop", "").split(",") if q.strip()]
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f"algorithm={algorithm}"]
    if "auth" in qops:
        cnonce = cnonce or secrets.token_hex(8)
        response = h(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        parts += [f'response="{response}"', "qop=auth", "nc=00000001", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{h(f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in fields:
        parts.append(f'opaque="{fields["opaque"]}"')
    return "Digest " + ", ".join(parts)


class _Connection:
    """One socket to the carrier, as Asterisk's transport would open it."""

    def __init__(self, trunk: Trunk, ca_file: str, timeout: float) -> None:
        self.trunk = trunk
        self.timeout = timeout
        family, kind, _, _, address = socket.getaddrinfo(
            trunk.host, trunk.effective_port, type=socket.SOCK_DGRAM if trunk.transport is Transport.UDP
            else socket.SOCK_STREAM)[0]
        self.address = address
        raw = socket.socket(family, kind)
        raw.settimeout(timeout)
        if trunk.transport is Transport.UDP:
            raw.connect(address)
            self.sock: socket.socket = raw
            return
        raw.connect(address)
        if trunk.transport is Transport.TLS:
            context = ssl.create_default_context(cafile=ca_file or None)
            if not trunk.verify_certificate:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self.sock = context.wrap_socket(raw, server_hostname=trunk.host)
        else:
            self.sock = raw
        self._buffer = b""

    @property
    def local(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def exchange(self, request: bytes) -> SipResponse:
        """Send `request`, return the first final response (retransmitting over UDP)."""
        deadline = time.monotonic() + self.timeout
        if self.trunk.transport is Transport.UDP:
            interval = T1
            while True:
                self.sock.send(request)
                resend_at = time.monotonic() + interval
                while time.monotonic() < min(resend_at, deadline):
                    self.sock.settimeout(max(0.05, min(resend_at, deadline) - time.monotonic()))
                    try:
                        data = self.sock.recv(65535)
                    except TimeoutError:
                        break
                    response = parse_response(data)
                    if response is not None and response.status >= 200:
                        return response
                if time.monotonic() >= deadline:
                    raise TimeoutError
                interval = min(interval * 2, 4.0)
        self.sock.sendall(request)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65535)
            if not chunk:
                raise ConnectionResetError("the carrier closed the connection")
            self._buffer += chunk
            while (response := parse_response(self._buffer)) is not None:
                _, _, rest = self._buffer.partition(b"\r\n\r\n")
                length = int((response.header("content-length") or ["0"])[0] or 0)
                if len(rest) < length:
                    break
                self._buffer = rest[length:]
                if response.status >= 200:
                    return response

    def close(self) -> None:
        self.sock.close()


def _request(method: str, trunk: Trunk, connection: _Connection, call_id: str, cseq: int,
             authorization: str | None) -> bytes:
    host = trunk.host if ":" not in trunk.host else f"[{trunk.host}]"
    local_host, local_port = connection.local
    via_transport = trunk.transport.value.upper()
    user = trunk.username or "dialer-check"
    aor = f"sip:{user}@{host}"
    uri = _uri(trunk)
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{via_transport} {local_host}:{local_port};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <{aor}>;tag={secrets.token_hex(6)}",
        f"To: <{aor if method == 'REGISTER' else uri}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "User-Agent: dialer-engine config check",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def _uri(trunk: Trunk) -> str:
    host = trunk.host if ":" not in trunk.host else f"[{trunk.host}]"
    return f"sip:{host}:{trunk.effective_port}" + ("" if trunk.transport is Transport.UDP
                                                   else f";transport={trunk.transport.value}")


def probe_trunk(trunk: Trunk, *, ca_file: str = "", timeout: float = TIMEOUT) -> ProbeResult:
    """Check `trunk` against its carrier now; never raises for a network or carrier problem."""
    where = f"{trunk.host}:{trunk.effective_port} ({trunk.transport.value.upper()})"
    name = f"Trunk {trunk.name!r}"
    try:
        connection = _Connection(trunk, ca_file or trunk.ca_file, timeout)
    except socket.gaierror:
        return ProbeResult(trunk.name, False, f"{name}: the host {trunk.host} does not resolve: check its name.")
    except ssl.SSLCertVerificationError as error:
        return ProbeResult(trunk.name, False, f"{name}: the carrier's TLS certificate at {where} is not trusted "
                           f"({error.verify_message}): set the trunk's ca_file to the CA that signed it, or fix "
                           "the host name.")
    except ssl.SSLError as error:
        return ProbeResult(trunk.name, False, f"{name}: the TLS handshake with {where} failed ({error.reason}): "
                           "check that the carrier speaks TLS on that port.")
    except ConnectionRefusedError:
        return ProbeResult(trunk.name, False, f"{name}: {where} refused the connection: check the host, port "
                           "and transport.")
    except (TimeoutError, OSError) as error:
        return ProbeResult(trunk.name, False, f"{name}: {where} cannot be reached "
                           f"({getattr(error, 'strerror', None) or 'no answer'}): check the address and "
                           "the firewall.")
    try:
        call_id = f"{secrets.token_hex(10)}@dialer-check"
        method = "REGISTER" if trunk.auth is TrunkAuth.DIGEST else "OPTIONS"
        response = connection.exchange(_request(method, trunk, connection, call_id, 1, None))
        if response.status in (401, 407) and trunk.auth is TrunkAuth.DIGEST:
            challenges = response.header("www-authenticate") + response.header("proxy-authenticate")
            authorization = None
            for challenge in challenges:
                authorization = digest_authorization(challenge, method, _uri(trunk), trunk.username,
                                                     trunk.password)
                if authorization:
                    break
            if authorization is None:
                return ProbeResult(trunk.name, False, f"{name}: the carrier asks for a digest algorithm we do "
                                   "not speak (MD5 or SHA-256).", response.status)
            response = connection.exchange(_request(method, trunk, connection, call_id, 2, authorization))
            if response.status in (401, 403, 407):
                return ProbeResult(trunk.name, False, f"{name}: the carrier refused username {trunk.username!r} "
                                   f"and its password (SIP {response.status} {response.reason}): check both "
                                   "with the carrier.", response.status)
    except TimeoutError:
        return ProbeResult(trunk.name, False, f"{name}: {where} did not answer SIP within {timeout:.0f} s: check "
                           "the port and transport, and that the carrier allows this address.")
    except OSError as error:
        return ProbeResult(trunk.name, False, f"{name}: the connection to {where} failed ({error}).")
    finally:
        connection.close()
    if 200 <= response.status < 300:
        what = "accepts the credentials" if trunk.auth is TrunkAuth.DIGEST else "answers"
        return ProbeResult(trunk.name, True, f"{name}: {where} {what}.", response.status)
    if trunk.auth is TrunkAuth.IP and response.status < 500:
        return ProbeResult(trunk.name, True, f"{name}: {where} answers (SIP {response.status}).", response.status)
    return ProbeResult(trunk.name, False, f"{name}: {where} answered SIP {response.status} {response.reason}: "
                       "check the settings with the carrier.", response.status)


async def log_trunk_checks(trunks: Sequence[Trunk], ca_file: str, log: BoundLogger) -> list[ProbeResult]:
    """Probe every trunk (in threads) and log each result: `trunk_ready`, or `trunk_check_failed`
    with the one sentence saying what is wrong (a refused password, an untrusted certificate)."""
    results = []
    for trunk in trunks:
        result = await asyncio.to_thread(probe_trunk, trunk, ca_file=ca_file)
        if result.ok:
            log.info("trunk_ready", trunk=trunk.name, detail=result.message)
        else:
            log.error("trunk_check_failed", trunk=trunk.name, problem=result.message, sip_status=result.status)
        results.append(result)
    return results
