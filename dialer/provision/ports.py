"""Free local ports for processes we start (a test Asterisk, softphones, a child controller).

Asking the kernel for port 0 hands out a port from the ephemeral range, which the kernel may
give to an outgoing connection before our process binds it (CI lost a run to a baresip that
found its TCP port taken by a client socket). Ports are drawn instead between the development
RTP range (10000-20000 by default) and the ephemeral range (32768 and up on Linux), with the
test Asterisk's RTP range (30000-40000) left out too.
"""

from __future__ import annotations

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
