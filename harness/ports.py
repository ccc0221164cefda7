"""Ephemeral loopback ports for phones, servers and receivers (tests and benchmark).

The OS hands out a free port (bind to port 0); the port is then closed and returned, so
there is a small window in which another process could take it. Ports handed out by this
process are remembered and never handed out twice, so concurrent phones in one test or
benchmark run do not collide with each other.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

HOST = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


def _bindable(kind: socket.SocketKind, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _os_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def _claim(kind: socket.SocketKind, span: int, both: bool) -> int:
    """Find a port P such that P..P+span-1 are free (UDP and, if ``both``, TCP too)."""
    for _ in range(200):
        port = _os_port(kind)
        candidates = range(port, port + span)
        if port + span - 1 > 65535:
            continue
        with _lock:
            if any(p in _handed_out for p in candidates):
                continue
            kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM) if both else (kind,)
            if all(_bindable(k, p) for p in candidates for k in kinds):
                _handed_out.update(candidates)
                return port
    raise RuntimeError("could not find a free loopback port")


def free_udp_port() -> int:
    """A free UDP port on 127.0.0.1 (for sipp ``-p``)."""
    return _claim(socket.SOCK_DGRAM, 1, both=False)


def free_udp_port_pair() -> int:
    """A port P where P and P+1 are free for UDP and TCP on 127.0.0.1.

    baresip's ``sip_listen 127.0.0.1:P`` binds UDP P, TCP P and TCP P+1 (for TLS).
    """
    return _claim(socket.SOCK_DGRAM, 2, both=True)


def free_tcp_port() -> int:
    """A free TCP port on 127.0.0.1 (for ``ctrl_tcp_listen`` or an HTTP server)."""
    return _claim(socket.SOCK_STREAM, 1, both=False)


def udp_bound(port: int) -> bool:
    """True when a UDP socket on this machine is bound to ``port`` (/proc/net/udp)."""
    wanted = f":{port:04X}"
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(line.split()[1].endswith(wanted) for line in lines)
