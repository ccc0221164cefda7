"""What counts as a usable host, port and destination: one definition for what we read
(Via, Contact) and for where we send."""

from __future__ import annotations

import ipaddress
import re

# RFC 3261 section 25.1: hostname = *( domainlabel "." ) toplabel [ "." ]; a top label
# starts with a letter, so "999.1.1.1" is neither a name nor an address.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP_LABEL = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)*{_TOP_LABEL}\.?")
MAX_HOSTNAME = 253


def valid_port(port: object) -> bool:
    return isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535


def valid_host(host: object) -> bool:
    """An IPv4 address, a bracketed IPv6 address or a host name."""
    if not isinstance(host, str) or not host:
        return False
    if host.startswith("["):
        if not host.endswith("]"):
            return False
        return ip_version(host[1:-1]) == 6
    if ip_version(host) == 4:
        return True
    return len(host) <= MAX_HOSTNAME and _HOSTNAME.fullmatch(host) is not None


def ip_version(host: str) -> int | None:
    """4 or 6 for an IP address written without brackets, None for anything else."""
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def unusable_destination(address: object) -> str | None:
    """Why a datagram cannot be sent to ``address`` (a ``(host, port)`` pair), or None.

    sippy queues IPv6 destinations without their brackets, so a bare IPv6 address counts.
    """
    if not isinstance(address, tuple) or len(address) != 2:
        return "not a (host, port) pair"
    host, port = address
    if not valid_port(port):
        return "port is not a number from 1 to 65535"
    if not (valid_host(host) or (isinstance(host, str) and ip_version(host) == 6)):
        return "not a host name or address"
    return None
