"""Free loopback ports for phones, servers and receivers (tests and benchmark).

A port is tried and closed, then used by whoever asked, so another process could take it
in between. Ports are therefore picked below the kernel's ephemeral range (32768-60999 on
Linux), which it hands to every outgoing connection (a database client's, Chromium's):
a port taken from that range was once grabbed by a PostgreSQL connection before the
server bound it. Each pytest-xdist worker picks from its own slice, so workers never
race for one port, and ports handed out by this process are never handed out twice.
"""

from __future__ import annotations

import os
import random
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


_FIRST, _SLICE = 10_000, 2_500  # slices 10000-12499, 12500-14999, ... up to 32499


def _slice() -> range:
    """This process's ports: its pytest-xdist worker's slice (gw0 the first), or the
    last one for a process that is no worker (the benchmark, a single pytest)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) % 8 if worker.startswith("gw") and worker[2:].isdigit() else 8
    start = _FIRST + index * _SLICE
    return range(start, start + _SLICE)


def _candidate() -> int:
    """A port of this process's slice, at random (``_claim`` checks it is free)."""
    return random.choice(_slice())


def _claim(kind: socket.SocketKind, span: int, both: bool) -> int:
    """Find a port P such that P..P+span-1 are free (UDP and, if ``both``, TCP too)."""
    for _ in range(200):
        port = _candidate()
        candidates = range(port, port + span)
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
