"""Carrier trunks, the caller IDs the agency may send, inbound numbers (DIDs): pure, no IO.

What this module holds, each as a frozen dataclass built from the configuration file
(``dialer.settings``) and checked there, once, at configuration time:

* `Trunk`: one carrier connection (host, transport, digest registration or IP authentication,
  codecs, a calls-per-second limit); several trunks are tried in the order they are listed.
* `CallerIdRecord`: a number the agency sends as caller ID, with who vouched that the agency
  owns it and answers it. 16 CFR 310.4(a)(8) (the TSR) requires every telemarketing call to
  transmit a caller ID number that the seller or telemarketer can be called back on during
  regular business hours; 47 CFR 64.1601(e) requires the same of any caller making
  telemarketing calls. So a number goes out only after someone accountable said so.
* `DidRoute`: an agency number that rings in, and the campaign its callers belong to.

And what is rendered from them for Asterisk (PJSIP sections, the inbound dialplan), and
`TrunkRouter`, the pure object that chooses the trunk of each dial: the preferred trunk that is
up and within its calls-per-second budget.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from compliance_rules.numbers import parse_number

# Names become PJSIP section names and dial strings (PJSIP/+1NPA...@name).
TRUNK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
# The simulated public network of development and tests uses these two endpoint names.
RESERVED_TRUNK_NAMES = frozenset({"trunk", "dialer"})
# Codecs a carrier trunk may offer (Asterisk format names; the ones carriers actually take).
KNOWN_CODECS = ("ulaw", "alaw", "g722", "g729", "opus", "gsm")
# Values that mean "no number" to caller ID services: a blocked caller ID (16 CFR 310.4(a)(8)).
WITHHELD = frozenset({"", "anonymous", "restricted", "private", "unavailable", "unknown", "withheld"})
# A 503 or a timeout from a carrier's side marks the trunk down for this long: the next dials go
# to the next trunk in preference order (the failed call is retried by the hopper, as congestion).
DEFAULT_COOLDOWN_SECONDS = 60.0


class TrunkConfigError(ValueError):
    """A trunk, caller ID or DID setting cannot be used; the message is one sentence saying what to do."""


class Transport(enum.StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"

    @property
    def default_port(self) -> int:
        return 5061 if self is Transport.TLS else 5060


class TrunkAuth(enum.StrEnum):
    """How the carrier knows calls are ours."""

    DIGEST = "digest"  # username and password: we register, and answer the carrier's challenges
    IP = "ip"  # the carrier allows our public address; no credentials


@dataclass(frozen=True)
class Trunk:
    """One carrier connection. Listed in preference order in the configuration."""

    name: str
    host: str
    port: int = 0  # 0: the transport's default (5060, 5061 for TLS)
    transport: Transport = Transport.UDP
    auth: TrunkAuth = TrunkAuth.DIGEST
    username: str = ""
    password: str = field(default="", repr=False)
    register: bool = True  # digest trunks register, so the carrier knows where to send inbound calls
    realm: str = ""  # the carrier's digest realm; empty: whatever it challenges with
    from_domain: str = ""  # the From header's host, when the carrier wants its own domain there
    from_user: str = ""  # only if the carrier insists on the account in From (PAI still carries the caller ID)
    codecs: tuple[str, ...] = ("ulaw", "alaw")
    calls_per_second: float = 0.0  # 0: no limit
    max_channels: int = 0  # 0: no limit; calls beyond it go to the next trunk or wait (TrunkRouter)
    srtp: bool = False  # SDES-SRTP media (needs TLS signalling: the keys travel in the SDP)
    verify_certificate: bool = True  # TLS: the carrier's certificate must chain to a trusted CA
    ca_file: str = ""  # TLS: the CA that signed the carrier's certificate (empty: the system's CAs)
    match: tuple[str, ...] = ()  # addresses or networks the carrier's calls come from (default: host)
    qualify_seconds: int = 60  # OPTIONS ping interval: Asterisk knows when the carrier is unreachable

    @property
    def effective_port(self) -> int:
        return self.port or self.transport.default_port

    @property
    def server_uri(self) -> str:
        suffix = "" if self.transport is Transport.UDP else f";transport={self.transport.value}"
        return f"sip:{_uri_host(self.host)}:{self.effective_port}{suffix}"

    @property
    def server_uri_conf(self) -> str:
        """`server_uri` as a pjsip.conf value: ';' starts a comment there unless escaped."""
        return self.server_uri.replace(";", "\\;")

    @property
    def endpoint(self) -> str:
        """The PJSIP endpoint calls go through: `PJSIP/+1NPANXXXXXX@<endpoint>`."""
        return self.name

    def dial_string(self, number: str) -> str:
        return f"PJSIP/{number}@{self.endpoint}"

    def problems(self) -> list[str]:
        """Everything wrong with this trunk, one sentence each (empty: usable)."""
        where = f"trunk {self.name!r}"
        found = []
        if not TRUNK_NAME.match(self.name):
            found.append(f"The name of {where} must be 2-32 lower-case letters, digits or dashes, starting "
                         "with a letter.")
        if self.name in RESERVED_TRUNK_NAMES:
            found.append(f"The name {self.name!r} is kept for the simulated network: name the trunk after "
                         "its carrier (e.g. 'carrier-a').")
        if not self.host or any(c in self.host for c in " ;<>\"'@/"):
            found.append(f"Set the host of {where} to the carrier's SIP host name or address.")
        if not 0 <= self.port < 65536:
            found.append(f"The port of {where} must be between 1 and 65535.")
        if self.auth is TrunkAuth.DIGEST:
            if not self.username:
                found.append(f"Set the username of {where} (digest authentication), or auth = \"ip\" if the "
                             "carrier authenticates us by address.")
            if not self.password:
                found.append(f"Set the password of {where} (password_file = a file holding it), or "
                             "auth = \"ip\".")
        unknown = [codec for codec in self.codecs if codec not in KNOWN_CODECS]
        if unknown or not self.codecs:
            found.append(f"The codecs of {where} must be some of {', '.join(KNOWN_CODECS)} "
                         f"(got {', '.join(self.codecs) or 'none'}).")
        if self.calls_per_second < 0:
            found.append(f"calls_per_second of {where} cannot be negative (0 means no limit).")
        if self.srtp and self.transport is not Transport.TLS:
            found.append(f"SRTP on {where} needs transport = \"tls\": its keys travel in the signalling.")
        for entry in self.match:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not re.fullmatch(r"[A-Za-z0-9.-]+", entry):
                    found.append(f"match of {where} has {entry!r}: give addresses, networks or host names.")
        for text in (self.username, self.realm, self.from_domain, self.from_user):
            if any(c in text for c in " ;<>\"'\r\n"):
                found.append(f"{where} has a setting with a space, quote or angle bracket: remove it.")
                break
        return found


def _uri_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


@dataclass(frozen=True)
class CallerIdRecord:
    """A number the agency sends as caller ID, and who vouched that it may.

    16 CFR 310.4(a)(8): the number transmitted must be one the seller or telemarketer answers
    during regular business hours (the seller's customer service number may be substituted).
    The configuration records the owner, the person who vouched for it, and when.
    """

    number: str
    owner: str  # the agency (or the seller) the number belongs to
    vouched_by: str  # the person accountable for the statement
    vouched_on: dt.date | None = None
    answered_by: str = ""  # who picks up when a called person calls back (a team, a queue)
    name: str = ""  # caller ID name (CNAM), where the carrier sends one

    def problems(self, today: dt.date) -> list[str]:
        found = []
        shown = self.number or "(empty)"
        if self.number.strip().lower() in WITHHELD:
            return [f"Caller ID {shown} is withheld: 16 CFR 310.4(a)(8) requires a number the agency can be "
                    "called back on; give a real number in E.164 (+1NPANXXXXXX)."]
        info = parse_number(self.number)
        if not info.ok or info.e164 != self.number:
            found.append(f"Caller ID {shown} is not a valid US number in E.164 (+1NPANXXXXXX): write it "
                         "as +1 and ten digits.")
        if not self.owner.strip():
            found.append(f"Caller ID {shown} has no owner: name the agency the number belongs to (owner = ...).")
        if not self.vouched_by.strip():
            found.append(f"Caller ID {shown} has no vouched_by: record who confirmed the agency owns it and "
                         "answers it during business hours (16 CFR 310.4(a)(8)).")
        if self.vouched_on is None or self.vouched_on > today:
            found.append(f"Caller ID {shown} needs vouched_on, the date it was confirmed (not in the future).")
        return found


@dataclass(frozen=True)
class DidRoute:
    """An agency number callers dial, and the campaign they belong to."""

    number: str
    campaign: str

    def problems(self) -> list[str]:
        info = parse_number(self.number)
        found = []
        if not info.ok or info.e164 != self.number:
            found.append(f"DID {self.number or '(empty)'} is not a US number in E.164 (+1NPANXXXXXX).")
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.campaign):
            found.append(f"DID {self.number}: campaign must be a campaign id (letters, digits, - _ . :).")
        return found


def caller_id_problem(number: str, vouched: Iterable[CallerIdRecord]) -> str | None:
    """One sentence when `number` may not be sent as caller ID, else None (a campaign's caller ID
    is checked with this when the campaign is configured, and by `dialer config check`)."""
    for record in vouched:
        if record.number == number:
            return None
    if number.strip().lower() in WITHHELD:
        return ("A campaign's caller ID cannot be withheld: 16 CFR 310.4(a)(8) requires a number the agency "
                "can be called back on.")
    return (f"Caller ID {number} is not among the agency's vouched numbers: add it to [[caller_ids]] with its "
            "owner, vouched_by and vouched_on (16 CFR 310.4(a)(8)).")


def carrier_networks(trunks: Iterable[Trunk]) -> list[str]:
    """The addresses and networks carriers' calls come from, for an ACL (host names cannot be
    in one: a carrier known by name needs its addresses in `match`)."""
    networks = []
    for trunk in trunks:
        for entry in trunk.match or (trunk.host,):
            try:
                networks.append(str(ipaddress.ip_network(entry, strict=False)))
            except ValueError:
                continue
    return networks


def check_plan(trunks: Sequence[Trunk], caller_ids: Sequence[CallerIdRecord], dids: Sequence[DidRoute],
               today: dt.date) -> list[str]:
    """Every problem of the carrier configuration as a whole, one sentence each."""
    found: list[str] = []
    names = [trunk.name for trunk in trunks]
    for name in sorted({name for name in names if names.count(name) > 1}):
        found.append(f"Two trunks are named {name!r}: give each its own name.")
    for trunk in trunks:
        found += trunk.problems()
    numbers = [record.number for record in caller_ids]
    for number in sorted({n for n in numbers if numbers.count(n) > 1}):
        found.append(f"Caller ID {number} is listed twice in [[caller_ids]]: keep one.")
    for record in caller_ids:
        found += record.problems(today)
    dialed = [route.number for route in dids]
    for number in sorted({n for n in dialed if dialed.count(n) > 1}):
        found.append(f"DID {number} is mapped twice in [[dids]]: one number rings one campaign.")
    for route in dids:
        found += route.problems()
    return found


# ---- what Asterisk is given ------------------------------------------------------------------------
def transport_name(transport: Transport) -> str:
    """The pjsip.conf transport a trunk's calls use."""
    return f"transport-{transport.value}"


def pjsip_trunk_sections(trunks: Sequence[Trunk]) -> str:
    """The endpoint, aor, auth, identify and registration sections of every trunk.

    - Outbound caller ID: From's user part is the caller ID number the dialer sets on the
      channel (unless `from_user`), and `send_pai` adds P-Asserted-Identity with the same
      number; `trust_id_outbound` lets it through.
    - Inbound: calls are matched to the trunk by source address only (`identify_by = ip`), so a
      stranger cannot pose as the carrier by putting the trunk's name in From; with a
      registration, `line` also marks our Contact, and the carrier's INVITE names the trunk.
    """
    out = []
    for trunk in trunks:
        name = trunk.name
        lines = [
            f"[{name}]", "type = endpoint", f"transport = {transport_name(trunk.transport)}",
            "context = from-carrier", "disallow = all", f"allow = {','.join(trunk.codecs)}", f"aors = {name}",
            "identify_by = ip", "send_pai = yes", "trust_id_inbound = yes", "trust_id_outbound = yes",
            "direct_media = no", "rtp_symmetric = yes", "force_rport = yes", "rewrite_contact = yes",
            "dtmf_mode = rfc4733", "timers = yes",
        ]
        if trunk.auth is TrunkAuth.DIGEST:
            lines.append(f"outbound_auth = {name}-auth")
        if trunk.from_domain:
            lines.append(f"from_domain = {trunk.from_domain}")
        if trunk.from_user:
            lines.append(f"from_user = {trunk.from_user}")
        if trunk.srtp:
            lines += ["media_encryption = sdes", "media_encryption_optimistic = no"]
        out.append("\n".join(lines))
        aor = [f"[{name}]", "type = aor", f"contact = {trunk.server_uri_conf}",
               f"qualify_frequency = {trunk.qualify_seconds}"]
        out.append("\n".join(aor))
        if trunk.auth is TrunkAuth.DIGEST:
            auth = [f"[{name}-auth]", "type = auth", "auth_type = userpass", f"username = {trunk.username}",
                    f"password = {trunk.password}"]
            if trunk.realm:
                auth.append(f"realm = {trunk.realm}")
            out.append("\n".join(auth))
            if trunk.register:
                host = _uri_host(trunk.host)
                out.append("\n".join([
                    f"[{name}-registration]", "type = registration",
                    f"transport = {transport_name(trunk.transport)}", f"outbound_auth = {name}-auth",
                    f"server_uri = {trunk.server_uri_conf}", f"client_uri = sip:{trunk.username}@{host}",
                    f"contact_user = {trunk.username}", "expiration = 600", "retry_interval = 30",
                    # A refused password is not retried every 30 s (the carrier would lock us out).
                    "forbidden_retry_interval = 300", "fatal_retry_interval = 300", "max_retries = 1000000",
                    "auth_rejection_permanent = no", "line = yes", f"endpoint = {name}",
                ]))
        matches = trunk.match or (trunk.host,)
        out.append("\n".join([f"[{name}-identify]", "type = identify", f"endpoint = {name}",
                              *(f"match = {entry}" for entry in matches)]))
    return "\n\n".join(out) + ("\n" if out else "")


def inbound_dialplan(dids: Sequence[DidRoute], app: str) -> str:
    """`from-carrier` extensions for the mapped DIDs, in the forms carriers send them
    (+1NPANXXXXXX, 1NPANXXXXXX, NPANXXXXXX); each enters the app as
    ``inbound,<E.164>,<campaign>``. Other numbers keep the generic rule after these."""
    lines = []
    for route in dids:
        national = route.number[2:]
        for form in (route.number, "1" + national, national):
            lines.append(f"exten => {form},1,Stasis({app},inbound,{route.number},{route.campaign})")
            lines.append(" same => n,Hangup()")
    return "\n".join(lines)


# ---- choosing the trunk of each dial ---------------------------------------------------------------
# Q.850 causes and SIP codes that say the carrier (not the called person) could not take the call.
FAILOVER_CAUSES = frozenset({34, 38, 41, 42, 102})  # congestion, network out of order, temporary failure, timeout
FAILOVER_SIP_CODES = frozenset({408, 500, 502, 503, 504})
# One call is tried on at most this many trunks (each a fresh INVITE to another carrier).
MAX_TRUNK_ATTEMPTS = 3
# How long the gate's dial-time decision stays good for a retry of the same call on another
# trunk: a 503 comes back within a second and the decision is reused; a SIP timeout takes 32 s
# (Timer B), by when the lead's list entries or calling window may have changed, so the gate is
# asked again.
DECISION_VALID_SECONDS = 10.0


def carrier_failed(cause: int, sip_code: int | None) -> bool:
    """True when a call's end says the trunk failed (503, a timeout): fail over to the next one."""
    return cause in FAILOVER_CAUSES or (sip_code is not None and sip_code in FAILOVER_SIP_CODES)


class RetryStep(enum.StrEnum):
    """What becomes of a dial that ended before it was answered."""

    END = "end"  # the called side's answer (busy, no answer, unallocated...), or no trunk left to try
    SAME_DECISION = "same_decision"  # try the next trunk under the gate decision already taken
    ASK_GATE = "ask_gate"  # try the next trunk after asking the gate again (its decision is too old)


def retry_step(cause: int | None, sip_code: int | None, *, provisional: bool, answered: bool, attempts: int,
               trunks: int, decided_at: float, now: float, valid_for: float = DECISION_VALID_SECONDS) -> RetryStep:
    """Whether a dial that just ended is tried again, at once, on the next trunk in preference order.

    Only a carrier's failure before any sign of the called phone qualifies: a 503, congestion or
    a SIP timeout (`carrier_failed`) with no provisional response (180 Ringing) and no answer. A
    call that rang reached the person's network; trying it elsewhere would ring them twice.
    `attempts` counts the trunks already tried (this one included) out of `trunks` configured,
    at most `MAX_TRUNK_ATTEMPTS`. The gate's decision taken at `decided_at` is reused within
    `valid_for` seconds, else the gate decides again before the next INVITE.
    """
    if answered or provisional or not carrier_failed(cause or 0, sip_code):
        return RetryStep.END
    if attempts >= min(trunks, MAX_TRUNK_ATTEMPTS):
        return RetryStep.END
    return RetryStep.SAME_DECISION if now - decided_at <= valid_for else RetryStep.ASK_GATE


@dataclass(frozen=True)
class TrunkAttempt:
    """One failed try of a call on a trunk, as the call's row keeps it (`calls.trunk_attempts`)."""

    trunk: str
    cause: int | None
    sip_code: int | None
    at: float  # epoch seconds of the failure

    def to_json(self) -> dict[str, object]:
        when = dt.datetime.fromtimestamp(self.at, dt.UTC).isoformat().replace("+00:00", "Z")
        return {"trunk": self.trunk, "cause": self.cause, "sip_code": self.sip_code, "at": when}


def trunk_of(dial_string: str) -> str:
    """The endpoint of a dial string (`PJSIP/+1NPANXXXXXX@carrier-a` -> `carrier-a`)."""
    return dial_string.rpartition("@")[2] if "@" in dial_string else ""


@dataclass
class _Bucket:
    """A token bucket: `rate` calls per second, bursts up to `capacity`."""

    rate: float
    capacity: float
    tokens: float
    at: float

    def refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = max(self.at, now)


class TrunkRouter:
    """Which trunk each dial goes through: the first, in preference order, that is up, has a
    channel free (`max_channels`) and a call left in its calls-per-second budget. Pure: the
    caller passes `now`.

    A trunk whose call ended with a carrier failure (503, a timeout: `carrier_failed`) is
    skipped for `cooldown` seconds, so the next dials go to the next trunk; it is tried again
    afterwards. Carriers enforce their calls-per-second and channel limits by refusing the excess
    with 503, which would count as abandoned work and trip the failover: the limits are honoured
    here, before the originate. The pacer asks `capacity(now)` how many calls may start now (one
    line in the campaign loop), and each dial takes its trunk with `route(now, key)`; the call's
    end gives the channel back (`dial_ended` or `release` with the same key).
    """

    def __init__(self, trunks: Sequence[Trunk], now: float, *, cooldown: float = DEFAULT_COOLDOWN_SECONDS,
                 fallback_endpoint: str = "trunk") -> None:
        self.trunks = tuple(trunks)
        self.cooldown = cooldown
        self.fallback_endpoint = fallback_endpoint
        self._buckets: dict[str, _Bucket | None] = {}
        for trunk in self.trunks:
            rate = trunk.calls_per_second
            # Bursts of at most one second's worth (at least one call).
            self._buckets[trunk.name] = _Bucket(rate, max(1.0, rate), max(1.0, rate), now) if rate > 0 else None
        self._down_until: dict[str, float] = {}
        self._unreachable: set[str] = set()
        self._routed: dict[str, str] = {}  # a dial's key (its call id) -> the endpoint it went to
        self._active: dict[str, int] = {}  # endpoint -> calls routed there and not yet released

    def _up(self, trunk: Trunk, now: float) -> bool:
        return trunk.name not in self._unreachable and self._down_until.get(trunk.name, 0.0) <= now

    def active(self, endpoint: str) -> int:
        """Calls on `endpoint` now (routed, not yet ended)."""
        return self._active.get(endpoint, 0)

    def _free_channels(self, trunk: Trunk) -> int | None:
        return None if trunk.max_channels <= 0 else max(0, trunk.max_channels - self.active(trunk.endpoint))

    def _available(self, trunk: Trunk, now: float) -> int | None:
        """Calls this trunk may start now; None means no limit."""
        bucket = self._buckets[trunk.name]
        tokens = None
        if bucket is not None:
            bucket.refill(now)
            tokens = int(bucket.tokens)
        channels = self._free_channels(trunk)
        if tokens is None or channels is None:
            return channels if tokens is None else tokens
        return min(tokens, channels)

    def capacity(self, now: float) -> int | None:
        """How many calls may start now over every usable trunk; None: no limit applies."""
        if not self.trunks:
            return None
        usable = [trunk for trunk in self.trunks if self._up(trunk, now)] or list(self.trunks)
        total = 0
        for trunk in usable:
            available = self._available(trunk, now)
            if available is None:
                return None
            total += available
        return total

    def limit(self, lines: int, now: float) -> int:
        """`lines` capped by `capacity(now)` (the pacer's one-line hook)."""
        capacity = self.capacity(now)
        return lines if capacity is None else max(0, min(lines, capacity))

    def route(self, now: float, key: str = "", exclude: Iterable[str] = ()) -> str | None:
        """The endpoint of the next dial (a channel and a call-per-second token taken), or None
        when every trunk is full or its budget spent for now: the call waits, it never goes past
        a limit. With no trunk configured: `fallback_endpoint`.

        `key` (the call's id) remembers the trunk, so `dial_ended(key, ...)` or `release(key)`
        gives the channel back; `exclude` names trunks this call already failed on."""
        if not self.trunks:
            return self.fallback_endpoint
        if key:
            self.release(key)  # a retry of the same call: its previous channel is free again
        chosen = self._choose(now, frozenset(exclude))
        if chosen is not None:
            self._active[chosen] = self.active(chosen) + 1
            if key:
                self._routed[key] = chosen
        return chosen

    def _choose(self, now: float, exclude: frozenset[str]) -> str | None:
        allowed = [trunk for trunk in self.trunks if trunk.endpoint not in exclude]
        candidates = [trunk for trunk in allowed if self._up(trunk, now)]
        # Every trunk down: try them anyway, in order (better than refusing to dial at all).
        for trunk in candidates or allowed:
            channels = self._free_channels(trunk)
            if channels is not None and channels < 1:
                continue
            bucket = self._buckets[trunk.name]
            if bucket is None:
                return trunk.endpoint
            bucket.refill(now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return trunk.endpoint
        return None

    def release(self, key: str) -> str | None:
        """The call routed with `key` holds no channel any more (idempotent); its endpoint."""
        endpoint = self._routed.pop(key, None)
        if endpoint is not None:
            self._active[endpoint] = max(0, self.active(endpoint) - 1)
        return endpoint

    def dial_ended(self, key: str, cause: int, sip_code: int | None, now: float) -> None:
        """The dial routed with `key` ended: its channel is free, and `call_ended` on its trunk."""
        endpoint = self.release(key)
        if endpoint is not None:
            self.call_ended(endpoint, cause, sip_code, now)

    def call_ended(self, endpoint: str, cause: int, sip_code: int | None, now: float) -> None:
        """A call through `endpoint` ended: a carrier failure marks the trunk down for a while."""
        if carrier_failed(cause, sip_code) and any(trunk.endpoint == endpoint for trunk in self.trunks):
            self._down_until[endpoint] = now + self.cooldown

    def set_reachable(self, endpoint: str, reachable: bool, now: float) -> None:
        """What Asterisk says of the trunk (its OPTIONS pings: `qualify_seconds`): an unreachable
        trunk is skipped until it answers again."""
        del now  # kept for the pure-object convention: every input carries the time
        if reachable:
            self._unreachable.discard(endpoint)
        elif any(trunk.endpoint == endpoint for trunk in self.trunks):
            self._unreachable.add(endpoint)

    def status(self, now: float) -> Mapping[str, str]:
        """Each trunk's state for /metrics and logs: `up` or `down`."""
        return {trunk.name: ("up" if self._up(trunk, now) else "down") for trunk in self.trunks}
