"""This host's network interfaces, as Asterisk's ICE sees them (Linux)."""

from __future__ import annotations

import fcntl
import socket
import struct

SIOCGIFADDR = 0x8915  # linux/sockios.h: an interface's (primary) IPv4 address


def ipv4_interface_addresses() -> list[str]:
    """The IPv4 address of every interface that has one, loopback included.

    Asterisk's ICE enumerates the same interfaces (pjlib's `pj_enum_ip_interface`); a
    secondary address on an interface is not listed here.
    """
    addresses = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
            except OSError:
                continue  # down, or no IPv4 address
            addresses.append(socket.inet_ntoa(answer[20:24]))
    return addresses
