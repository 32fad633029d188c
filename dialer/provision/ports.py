"""Free local ports for processes we start (a test Asterisk, softphones, a child controller).

Asking the kernel for port 0 hands out a port from the ephemeral range, which the kernel may
give to an outgoing connection before our process binds it (CI lost a run to a baresip that
found its TCP port taken by a client socket). Ports are drawn instead between the development
RTP range (10000-20000 by default) and the ephemeral range (32768 and up on Linux), with the
test Asterisk's RTP range (30000-40000) left out too.

`port_taken` is the one probe for "does another program hold this port now?", asked before an
Asterisk is started (AsteriskInstance.start) so a taken port is named at once instead of after a
minute of waiting for an ARI that never answers.
"""

from __future__ import annotations

import errno
import random
import socket

PORT_RANGE = range(20001, 30000)


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_local_port(*, tcp: bool = True, udp: bool = True, attempts: int = 200) -> int:
    """A 127.0.0.1 port nothing holds right now, on TCP and/or UDP (both by default)."""
    for _ in range(attempts):
        port = random.choice(PORT_RANGE)
        if (not tcp or _bindable(port, socket.SOCK_STREAM)) and (not udp or _bindable(port, socket.SOCK_DGRAM)):
            return port
    raise OSError(f"no free local port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1} after {attempts} tries")


def port_taken(host: str, port: int, kind: socket.SocketKind) -> bool:
    """Does another program hold `port` on `host` now (a TCP listener, or a UDP socket)?

    TCP probes with SO_REUSEADDR, as Asterisk's HTTP server binds: the TIME_WAIT connections a
    just-stopped Asterisk leaves on its ARI port do not count, only a live listener does. UDP has
    no TIME_WAIT, and there SO_REUSEADDR would let the probe share a port whose holder set it too.
    Only "address in use" counts: an address this machine does not have is Asterisk's own error
    to report."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as probe:
        if kind == socket.SOCK_STREAM:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False
