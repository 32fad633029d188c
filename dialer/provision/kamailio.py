"""Kamailio as the SIP edge of a cluster of Asterisk nodes: render its configuration, start, stop.

What the edge does (docs/cluster.md):

* **registrar** for agents' desk phones: a phone registers at the edge, not at a node, with the
  credential the project generated for its endpoint (dialer/provision/credentials.py). Kamailio
  checks the digest against a plain-text table the project renders (db_text, the ``ha1``
  column only: the MD5 of ``username:realm:password``, the same value Asterisk is given);
  registrations live in memory (usrloc ``db_mode = 0``). A wrong password is answered 403.
* **dispatcher**: calls entering from a carrier go to one of the Asterisk nodes, round robin,
  skipping nodes its OPTIONS probes (every second) found silent; a node that fails to answer an
  INVITE within 2 s is marked down and the call tries the next one.
* **to agents**: any node rings an agent by sending the INVITE to the edge (each node's desk
  endpoints have the edge as their static contact), which finds the phone by location lookup.
* **browser phones** (``EdgeConfig.ws_port``): SIP over WebSocket on a TCP port of the edge
  (modules xhttp and websocket, from the distribution's ``kamailio-websocket-modules``). A
  browser registers there like a desk phone; its contact (``...@xyz.invalid;transport=ws``)
  cannot be reached by address, so the registration keeps the WebSocket connection it came on
  (nathelper's ``fix_nated_register``), and the browser's Contact in dialogs gets an alias of
  that connection (``add_contact_alias``) that in-dialog requests from the node are routed by
  (``handle_ruri_alias``). The node's ``webrtc=yes`` endpoint still does DTLS-SRTP and ICE with
  the browser directly: the edge sees only the SDP passing by.

Media flows between the node and the phone directly: the edge handles signalling only, and it
record-routes so in-dialog requests (ACK, BYE, re-INVITE) pass through it too.

Everything here listens on one address (127.0.0.1 by default); several edges run side by side
on their own ports, each with its own directory (configuration, runtime, log).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from dialer.provision.asterisk import ProvisionError, process_alive

KAMAILIO_BINARY = "kamailio"
KAMCMD_BINARY = "kamcmd"
# The dispatcher set holding the Asterisk nodes.
NODE_SET = 1
# Kamailio's modules the configuration loads (all in the distribution's `kamailio` package).
MODULES = (
    "kex", "corex", "tm", "tmx", "sl", "rr", "pv", "maxfwd", "usrloc", "registrar",
    "textops", "siputils", "xlog", "sanity", "ctl", "db_text", "auth", "auth_db", "dispatcher",
)
# SIP over WebSocket for browser phones (package kamailio-websocket-modules, plus nathelper).
WS_MODULES = ("xhttp", "websocket", "nathelper")
MODULES_DIR = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
_HA1 = re.compile(r"^[0-9a-f]{32}$")
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SipAddress:
    """A host (an IPv4 address) and port, as a node's or a carrier's SIP source."""

    host: str
    port: int

    def __post_init__(self) -> None:
        ipaddress.IPv4Address(self.host)  # ValueError for anything else: it goes into the script
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not a UDP port")

    @classmethod
    def parse(cls, text: str) -> SipAddress:
        """'127.0.0.1:5160' (the port is required: every node and carrier here shares one address)."""
        host, separator, port = text.rpartition(":")
        if not separator or not port.isdigit():
            raise ValueError(f"{text!r} is not HOST:PORT")
        return cls(host, int(port))

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class EdgeConfig:
    """What an edge is rendered with."""

    name: str
    sip_port: int
    nodes: tuple[SipAddress, ...]
    # Where carriers' calls come from: their INVITEs are dispatched to a node without a challenge.
    carriers: tuple[SipAddress, ...] = ()
    realm: str = "dialer"
    listen: str = "127.0.0.1"
    # How often the nodes are probed (OPTIONS), and how long a node has to answer an INVITE
    # (100 Trying) before the call tries the next node.
    probe_seconds: int = 1
    node_answer_ms: int = 2000
    children: int = 2
    # The TCP port of the SIP-over-WebSocket listener for browser phones (ws://LISTEN:PORT/ws);
    # 0: none (desk phones only).
    ws_port: int = 0

    def __post_init__(self) -> None:
        ipaddress.IPv4Address(self.listen)
        if not self.nodes:
            raise ValueError("an edge needs at least one Asterisk node")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.realm):
            raise ValueError(f"realm {self.realm!r} has characters the script cannot hold")
        if self.edge in self.nodes or self.edge in self.carriers:
            raise ValueError(f"the edge's own address {self.edge} cannot be a node or a carrier")
        if set(self.nodes) & set(self.carriers):
            raise ValueError("an address cannot be both a node and a carrier")
        if not 0 <= self.ws_port < 65536:
            raise ValueError(f"port {self.ws_port} is not a TCP port")

    @property
    def ws_url(self) -> str:
        """Where browser phones connect ("" without a WebSocket listener)."""
        return f"ws://{self.listen}:{self.ws_port}/ws" if self.ws_port else ""

    @property
    def edge(self) -> SipAddress:
        return SipAddress(self.listen, self.sip_port)


# ---- pure rendering ---------------------------------------------------------------------------
def dispatcher_list(nodes: Iterable[SipAddress]) -> str:
    """dispatcher.list: every node in set NODE_SET, probed from the start (flags 8 = probing)."""
    lines = ["# set destination flags priority attributes (rendered by dialer/provision/kamailio.py)"]
    for index, node in enumerate(nodes, start=1):
        lines.append(f"{NODE_SET} {node.uri} 8 0 node=node{index}")
    return "\n".join(lines) + "\n"


SUBSCRIBER_HEADER = "id(int,auto) username(string) ha1(string)"


def subscriber_table(digests: Mapping[str, str]) -> str:
    """The db_text `subscriber` table: one row per endpoint with its HA1 (no plaintext password)."""
    rows = [SUBSCRIBER_HEADER]
    for index, (username, ha1) in enumerate(sorted(digests.items()), start=1):
        if not _USER.fullmatch(username):
            raise ValueError(f"{username!r} is not a SIP user name the table can hold")
        if not _HA1.fullmatch(ha1):
            raise ValueError(f"the digest of {username} is not an MD5 hex digest")
        rows.append(f"{index}:{username}:{ha1}")
    return "\n".join(rows) + "\n"


def carrier_condition(carriers: Iterable[SipAddress]) -> str:
    """The script's test that a request comes from a carrier (source address and port)."""
    tests = [f'($si == "{carrier.host}" && $sp == {carrier.port})' for carrier in carriers]
    return " || ".join(tests) if tests else "0"


def kamailio_cfg(config: EdgeConfig, base: Path) -> str:
    """The whole kamailio.cfg of an edge whose files live under `base`."""
    realm = config.realm
    ws = config.ws_port > 0
    modules = "\n".join(f'loadmodule "{module}.so"' for module in MODULES + (WS_MODULES if ws else ()))
    # A browser's WebSocket: Kamailio's HTTP server takes the upgrade on the TCP listener (no
    # Content-Length on a GET: tcp_accept_no_cl), and keeps idle connections as long as a
    # registration lasts.
    ws_globals = (f"listen=tcp:{config.listen}:{config.ws_port}\n"
                  f'alias="{config.listen}:{config.ws_port}"\n'
                  "tcp_accept_no_cl=yes\ntcp_connection_lifetime=3605\n") if ws else "disable_tcp=yes\n"
    ws_params = f"""
# Browser phones: SIP over WebSocket (ws://{config.listen}:{config.ws_port}/ws). Their contacts are
# reached through the connection they registered on (the registration's received address).
modparam("websocket", "keepalive_mechanism", 1)
modparam("websocket", "keepalive_interval", 30)
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("registrar", "received_avp", "$avp(RECEIVED)")
""" if ws else ""
    # A request from a browser (nathelper test 64: it came on a WebSocket): its Contact gets the
    # connection's alias, a REGISTER's contact the connection as received address.
    ws_request = """    if (nat_uac_test("64")) {
        if (is_method("REGISTER")) {
            fix_nated_register();
        } else {
            add_contact_alias();
        }
    }
""" if ws else ""
    ws_dialog = """        if ($du == "") {
            # To a browser: its Request-URI carries the alias of its WebSocket connection.
            handle_ruri_alias();
        }
""" if ws else ""
    ws_routes = """
onreply_route[FROM_BROWSER] {
    # A browser's reply (its 200 OK's Contact) gets the alias of its WebSocket connection, so
    # the node's in-dialog requests (ACK, BYE) find the browser again.
    if (nat_uac_test("64")) {
        add_contact_alias();
    }
}

event_route[xhttp:request] {
    # The listener takes WebSocket upgrades on /ws only: no other HTTP.
    if ($(hdr(Upgrade){s.tolower}) == "websocket" && $(hdr(Connection){s.tolower}) =~ "upgrade"
            && $hu =~ "^/ws") {
        if (ws_handle_handshake()) {
            exit;
        }
    }
    xhttp_reply("404", "Not Found", "", "");
}
""" if ws else ""
    ws_reply_hook = '    t_on_reply("FROM_BROWSER");\n' if ws else ""
    return f"""#!KAMAILIO
# The SIP edge {config.name}: rendered by dialer/provision/kamailio.py; edits are overwritten.

debug=2
log_stderror=yes
log_prefix="{{$mt $rm $ci}} "
children={config.children}
auto_aliases=no
listen=udp:{config.listen}:{config.sip_port}
alias="{config.listen}:{config.sip_port}"
{ws_globals}server_header="Server: dialer-edge"
user_agent_header="User-Agent: dialer-edge"
mpath="{MODULES_DIR}/"

{modules}

modparam("ctl", "binrpc", "unix:{base}/run/kamailio_ctl")

# Registrations in memory only: a restarted edge is re-registered by the phones (600 s at most).
modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 600)

# Phones' credentials: the db_text table {base}/db/subscriber holds each endpoint's HA1 only.
modparam("auth_db", "db_url", "text://{base}/db")
modparam("auth_db", "calculate_ha1", 0)
modparam("auth_db", "password_column", "ha1")
modparam("auth_db", "use_domain", 0)
modparam("auth_db", "load_credentials", "")
modparam("auth_db", "version_table", 0)
modparam("auth", "nonce_expire", 300)

# The Asterisk nodes: probed with OPTIONS every {config.probe_seconds} s; one silent probe marks a
# node down, one answer brings it back. A node that refuses OPTIONS (401, 403, 404, 405) is alive
# too; not "class=4": the 408 Kamailio makes up when a probe times out would count as an answer.
modparam("dispatcher", "list_file", "{base}/etc/dispatcher.list")
modparam("dispatcher", "ds_ping_interval", {config.probe_seconds})
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_ping_from", "sip:edge@{config.listen}:{config.sip_port}")
modparam("dispatcher", "ds_ping_reply_codes", "class=2;code=401;code=403;code=404;code=405")
modparam("dispatcher", "ds_timer_mode", 1)
# Failover: the other nodes are kept with the selected one, for ds_next_dst().
modparam("dispatcher", "flags", 2)

# A node or phone silent for 2 s after a request: the transaction ends with 408 (a probe
# that times out marks its node down).
modparam("tm", "fr_timer", 2000)
modparam("tm", "fr_inv_timer", 60000)
modparam("rr", "enable_full_lr", 0)
{ws_params}
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check("1511", "7")) {{
        exit;
    }}
    force_rport();
{ws_request}    # Keepalives and probes addressed to the edge itself.
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (has_totag()) {{
        route(WITHIN_DIALOG);
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (t_check_trans()) {{
        exit;  # a retransmission: the transaction answers it
    }}
    if (is_method("REGISTER")) {{
        route(REGISTRAR);
        exit;
    }}
    if (ds_is_from_list("{NODE_SET}")) {{
        route(TO_AGENT);
        exit;
    }}
    if (is_method("INVITE") && ({carrier_condition(config.carriers)})) {{
        route(TO_NODE);
        exit;
    }}
    # Phones and anyone else. Agents' phones do not place calls by themselves: the dialer calls
    # them, and every call it places passes its compliance gate first.
    if (!proxy_authorize("{realm}", "subscriber")) {{
        proxy_challenge("{realm}", "1");
        exit;
    }}
    xlog("L_NOTICE", "edge: refused $rm to $ru from $au at $si:$sp (phones do not dial out)\\n");
    sl_send_reply("403", "Phones do not dial out");
    exit;
}}

route[REGISTRAR] {{
    auth_check("{realm}", "subscriber", "1");
    $var(auth) = $rc;
    if ($var(auth) == -2 || $var(auth) == -3 || $var(auth) == -8) {{
        # A wrong password or an unknown user: refused for good, so the phone stops retrying.
        xlog("L_WARN", "edge: registration refused for $au ($tu) from $si:$sp (code $var(auth))\\n");
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    if ($var(auth) < 0) {{
        auth_challenge("{realm}", "1");
        exit;
    }}
    consume_credentials();
    # One phone per endpoint: a new registration replaces the old one.
    if (!save("location", "0x04")) {{
        sl_reply_error();
    }}
    exit;
}}

route[WITHIN_DIALOG] {{
    if (loose_route()) {{
{ws_dialog}        route(RELAY);
        exit;
    }}
    if (is_method("ACK")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    sl_send_reply("404", "Not here");
    exit;
}}

route[TO_AGENT] {{
    # A node rings an agent: find the phone registered for the Request-URI's user.
    record_route();
    if (!lookup("location")) {{
        xlog("L_NOTICE", "edge: $rU is not registered (call from $si:$sp)\\n");
        sl_send_reply("480", "Not Registered");
        exit;
    }}
    xlog("L_INFO", "edge: $tU rings at $ru (call from node $si:$sp)\n");
{ws_reply_hook}    route(RELAY);
    exit;
}}

route[TO_NODE] {{
    record_route();
    if (!ds_select_dst("{NODE_SET}", "4")) {{
        xlog("L_ERR", "edge: no Asterisk node is up for the call to $rU\\n");
        sl_send_reply("503", "No Node Available");
        exit;
    }}
    xlog("L_INFO", "edge: call to $rU dispatched to $du\\n");
    t_set_fr(0, {config.node_answer_ms});
    t_on_failure("NODE_FAILED");
    route(RELAY);
    exit;
}}

failure_route[NODE_FAILED] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (t_check_status("500|503") || (t_branch_timeout() && !t_branch_replied())) {{
        xlog("L_WARN", "edge: node $du failed the call to $rU: marked down\\n");
        ds_mark_dst("ip");
        if (ds_next_dst()) {{
            xlog("L_INFO", "edge: call to $rU dispatched to $du instead\\n");
            t_set_fr(0, {config.node_answer_ms});
            t_on_failure("NODE_FAILED");
            route(RELAY);
        }}
    }}
}}

route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
{ws_routes}"""


def parse_dispatcher_list(output: str) -> dict[str, str]:
    """`kamcmd dispatcher.list` -> {node URI: flags}: 'AP' active, 'IP' inactive (probing), 'DX' disabled."""
    states: dict[str, str] = {}
    uri: str | None = None
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("URI:"):
            uri = text.split(":", 1)[1].strip()
        elif text.startswith("FLAGS:") and uri is not None:
            states[uri] = text.split(":", 1)[1].strip()
            uri = None
    return states


# ---- the running edge -------------------------------------------------------------------------
def kamailio_installed() -> bool:
    return shutil.which(KAMAILIO_BINARY) is not None and shutil.which(KAMCMD_BINARY) is not None


def websocket_modules_installed() -> bool:
    """Whether the edge can carry browser phones (package kamailio-websocket-modules)."""
    return all((MODULES_DIR / f"{module}.so").exists() for module in WS_MODULES)


class KamailioInstance:
    """One Kamailio edge with its own directory: etc/ (kamailio.cfg, dispatcher.list), db/ (the
    phones' HA1 table), run/ (pid file, control socket) and log/kamailio.log."""

    def __init__(self, config: EdgeConfig, base: Path) -> None:
        self.config = config
        self.base = base
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def cfg_file(self) -> Path:
        return self.base / "etc" / "kamailio.cfg"

    @property
    def log_file(self) -> Path:
        return self.base / "log" / "kamailio.log"

    @property
    def pid_file(self) -> Path:
        return self.base / "run" / "kamailio.pid"

    @property
    def control_socket(self) -> Path:
        return self.base / "run" / "kamailio_ctl"

    @property
    def sip_uri(self) -> str:
        return self.config.edge.uri

    def render(self, digests: Mapping[str, str]) -> set[str]:
        """Write the configuration, the node list and the phones' HA1 table (0600: password
        equivalents); the names of the files whose content changed."""
        for sub in ("etc", "db", "run", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o700)
        files = {
            self.cfg_file: kamailio_cfg(self.config, self.base),
            self.base / "etc" / "dispatcher.list": dispatcher_list(self.config.nodes),
            self.base / "db" / "subscriber": subscriber_table(digests),
        }
        changed = set()
        for path, text in files.items():
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                changed.add(path.name)
        (self.base / "db" / "subscriber").chmod(0o600)
        return changed

    def check(self) -> None:
        """Kamailio's own syntax check of the rendered script; ProvisionError with its complaint."""
        result = subprocess.run([KAMAILIO_BINARY, "-c", "-f", str(self.cfg_file)], capture_output=True, text=True,
                                timeout=30, check=False)
        if result.returncode != 0:
            tail = " | ".join(result.stderr.strip().splitlines()[-4:])
            raise ProvisionError(f"Kamailio refuses its configuration {self.cfg_file}: {tail}")

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def rpc(self, *command: str, timeout: float = 5.0) -> str:
        """One control command (`kamcmd`), e.g. rpc("dispatcher.list"); its text output."""
        result = subprocess.run([KAMCMD_BINARY, "-s", f"unix:{self.control_socket}", *command], capture_output=True,
                                text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise ProvisionError(f"kamcmd {' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def answers(self) -> bool:
        try:
            return "dispatcher" in self.rpc("system.listMethods", timeout=2.0)
        except (ProvisionError, subprocess.TimeoutExpired):
            return False

    def node_states(self) -> dict[str, str]:
        """Each node's dispatcher flags: 'AP' up, 'IP' down (still probed)."""
        return parse_dispatcher_list(self.rpc("dispatcher.list"))

    def registered(self, user: str) -> bool:
        """Whether a phone is registered for `user` (e.g. agent1001)."""
        try:
            return "Contact" in self.rpc("ul.lookup", "location", user)
        except ProvisionError:
            return False

    def start(self, digests: Mapping[str, str], timeout: float = 20.0) -> None:
        """Render, check, start Kamailio in the background and wait until its control socket answers."""
        if not kamailio_installed():
            raise ProvisionError("Kamailio is not installed: run scripts/bootstrap.sh "
                                 "(apt-get install -y kamailio kamailio-websocket-modules).")
        if self.config.ws_port and not websocket_modules_installed():
            raise ProvisionError("Kamailio's WebSocket modules are not installed: run scripts/bootstrap.sh "
                                 "(apt-get install -y kamailio-websocket-modules).")
        if self.pid() is not None and self.answers():
            changed = self.render(digests)
            if not changed & {self.cfg_file.name, "subscriber"}:
                if changed:
                    self.rpc("dispatcher.reload")
                return
            # Kamailio reads the script and the credentials table once (db_text caches it): a
            # changed one needs a restart, and the phones register again within their
            # registration interval (registrations are in memory).
            self.stop()
        self.render(digests)
        self.check()
        self.pid_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            process = self._process = subprocess.Popen(
                [KAMAILIO_BINARY, "-f", str(self.cfg_file), "-DD", "-E", "-P", str(self.pid_file),
                 "-Y", str(self.base / "run"), "-m", "64", "-M", "8"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ProvisionError(f"Kamailio exited at start (status {process.returncode}): {self._log_tail()} "
                                     f"(full log: {self.log_file})")
            if self.control_socket.exists() and self.answers():
                return
            time.sleep(0.2)
        self.stop()
        raise ProvisionError(f"Kamailio did not answer within {timeout:.0f} s; see {self.log_file}.")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the main process (it ends its children), SIGKILL to the group if it lingers."""
        pid = self.pid()
        if pid is None and self._process is not None and self._process.poll() is None:
            pid = self._process.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process_alive(pid):
                time.sleep(0.1)
            if process_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            self._process = None
        self.pid_file.unlink(missing_ok=True)

    @contextlib.contextmanager
    def running(self, digests: Mapping[str, str]) -> Iterator[KamailioInstance]:
        self.start(digests)
        try:
            yield self
        finally:
            self.stop()

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

