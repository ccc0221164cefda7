"""Kamailio as the cluster's SIP edge (``deploy/kamailio/kamailio.cfg``), for tests.

``Edge(workdir, nodes=[("127.0.0.1", 5081)])`` is a context manager: on entry it writes the
dispatcher list into ``workdir``, starts ``kamailio`` in the foreground on a free loopback
UDP port (its runtime directory and log in ``workdir`` too), and waits until it answers an
OPTIONS sent to itself; on exit it stops it (SIGTERM to its process group, then SIGKILL) and
reaps it. Its log (``edge.log``) is what to read when a test through it fails.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from . import processes
from .ports import HOST, free_udp_port
from .processes import ChildProcess, Proc, read_log
from .wait import WaitTimeout, wait_until

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "kamailio" / "kamailio.cfg"
# The dispatcher set of the nodes (NODES in kamailio.cfg).
NODE_SET = 1

_probes = itertools.count(1)


def dispatcher_list(nodes: Sequence[tuple[str, int]]) -> str:
    """The dispatcher module's list file: every node in the one set, in order."""
    return "".join(f"{NODE_SET} sip:{host}:{port}\n" for host, port in nodes)


class Edge(ChildProcess):
    def __init__(self, workdir: Path, nodes: Sequence[tuple[str, int]], *,
                 host: str = HOST, port: int | None = None) -> None:
        if not host.startswith("127."):
            raise ValueError("the edge listens on loopback only")
        self.workdir = Path(workdir)
        self.nodes = tuple(nodes)
        self.host = host
        self.port = port if port is not None else free_udp_port()
        self.log_file = self.workdir / "edge.log"
        self._proc: Proc | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def pid(self) -> int:
        """Kamailio's main process (its workers are its children)."""
        if self._proc is None:
            raise RuntimeError("the edge does not run")
        return self._proc.pid

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log(self) -> str:
        return read_log(self.log_file)

    def start(self, timeout: float = 15.0) -> None:
        if self._proc is not None:
            raise RuntimeError("the edge already runs")
        rundir = self.workdir / "kamailio-run"
        rundir.mkdir(parents=True, exist_ok=True)
        listing = self.workdir / "dispatcher.list"
        listing.write_text(dispatcher_list(self.nodes))
        args = [
            KAMAILIO, "-f", str(CONFIG), "-DD", "-E", "-m", "64", "-M", "8",
            "-Y", str(rundir),
            "-A", f"EDGE_LISTEN=udp:{self.host}:{self.port}",
            "-A", f'DISPATCHER_LIST="{listing}"',
        ]  # fmt: skip
        self._proc = processes.start(f"kamailio-{self.port}", args, self.log_file,
                                     cwd=self.workdir)
        try:
            wait_until(self._answers, timeout, interval=0.05)
        except WaitTimeout:
            self.stop()
            raise WaitTimeout(f"kamailio did not answer OPTIONS on {self.hostport}:\n"
                              f"{self.log[-4000:]}") from None

    def stop(self) -> int:
        proc, self._proc = self._proc, None
        return 0 if proc is None else proc.stop(grace=5.0)

    def _answers(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise AssertionError(f"kamailio exited with {self._proc.returncode}:\n"
                                 f"{self.log[-4000:]}")
        return options_answered(self.address, timeout=0.2)


def options_answered(address: tuple[str, int], timeout: float) -> bool:
    """True when ``address`` answers an OPTIONS (to itself, no user) with 200."""
    host, port = address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(timeout)
        local_port = sock.getsockname()[1]
        branch = f"z9hG4bK-probe-{uuid.uuid4().hex[:12]}"
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{local_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{HOST}>;tag=probe{next(_probes)}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}@{HOST}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (host, port))
        try:
            answer = sock.recv(4096).decode(errors="replace")
        except (TimeoutError, ConnectionRefusedError):  # not listening yet
            return False
    return answer.startswith("SIP/2.0 200")


class FailingNode:
    """A node that is up for the edge's probes (OPTIONS: 200) and fails everything else
    with ``status`` (503: overloaded), counting what it failed; a context manager running
    one thread on a loopback UDP port. The edge must send those requests on to the next
    node (failure_route in kamailio.cfg)."""

    def __init__(self, status: int = 503, host: str = HOST) -> None:
        self.address = (host, free_udp_port())
        self.status = status
        self.failed: list[str] = []  # the methods it answered ``status``
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(self.address)
        self._socket.settimeout(0.1)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="failing-node", daemon=True)

    def __enter__(self) -> FailingNode:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data, sender = self._socket.recvfrom(65535)
            except TimeoutError:
                continue
            request = data.decode(errors="replace")
            method = request.split(" ", 1)[0]
            if method in ("ACK", "") or request.startswith("SIP/2.0"):
                continue  # the ACK of our failure, or an answer: nothing to say
            if method != "OPTIONS":
                self.failed.append(method)
            status = "200 OK" if method == "OPTIONS" else f"{self.status} Failing"
            self._socket.sendto(_answer(request, status).encode(), sender)


def _answer(request: str, status: str) -> str:
    """A stateless answer to ``request``: its Vias, From, Call-ID and CSeq, To with a tag."""
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    kept = []
    for line in head:
        name = line.split(":", 1)[0].strip().lower()
        if name in ("via", "v", "from", "f", "call-id", "i", "cseq"):
            kept.append(line)
        elif name in ("to", "t"):
            kept.append(line if ";tag=" in line else f"{line};tag=failing")
    return "\r\n".join([f"SIP/2.0 {status}", *kept, "Content-Length: 0", "", ""])
