"""The systems under test: ``hookswitch serve`` and bare sippy's ``b2bua_simple``, plus the
webhook receiver process. Each is started on fresh loopback ports and stopped by the run."""

from __future__ import annotations

import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness import processes
from harness.ports import HOST, free_tcp_port, free_udp_port
from harness.processes import Proc
from harness.server import RunningServer
from harness.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent  # bench.* modules run from here
TENANT = "b11d749b-8eb7-4236-a068-3d94ba3860d6"
CALLEE = "200"  # the phone every benchmark call rings
CALLEE_NUMBER = "+3228990200"  # its DID: a trunk call to it rings 200
CALLER = "210"  # the extension that calls 200 with digest auth, and clicks to dial
THIRD = "220"  # where the call-control benchmark transfers 210's calls to
PASSWORDS = {CALLEE: "bench-200-pass", CALLER: "bench-210-pass", THIRD: "bench-220-pass"}
TOKENS = {CALLEE: "bench-token-200", CALLER: "bench-token-210", THIRD: "bench-token-220"}


def provisioning(*, http: int, sip: int, database: str, trunk_port: int,
                 webhook: str | None) -> str:
    hook = f'\n[[tenants.webhooks]]\nurl = "{webhook}"\n' if webhook else ""
    return f"""
[server]
http = "{HOST}:{http}"
sip = "{HOST}:{sip}"
database = "{database}"
default_tenant = "{TENANT}"
ring_timeout = 30
click_to_dial_timeout = 30
rate_limit = 100000
rate_limit_burst = 100000

[[tenants]]
id = "{TENANT}"
name = "Bench"

[[tenants.users]]
extension = "{CALLEE}"
name = "John Doe"
sip_password = "{PASSWORDS[CALLEE]}"
api_token = "{TOKENS[CALLEE]}"
numbers = ["{CALLEE_NUMBER}"]

[[tenants.users]]
extension = "{CALLER}"
name = "Jane Doe"
sip_password = "{PASSWORDS[CALLER]}"
api_token = "{TOKENS[CALLER]}"

[[tenants.users]]
extension = "{THIRD}"
name = "Bob Roe"
sip_password = "{PASSWORDS[THIRD]}"
api_token = "{TOKENS[THIRD]}"

[[tenants.trunks]]
name = "carrier"
address = "{HOST}:{trunk_port}"
{hook}"""


@dataclass
class Hookswitch:
    """``hookswitch serve`` (the harness's RunningServer) with the benchmark's users, leg
    state, SQLite and (unless None) a webhook."""

    workdir: Path
    trunk_port: int
    webhook: str | None
    stop_grace: float = 30.0  # seconds SIGTERM gets before SIGKILL

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server = RunningServer(
            self.workdir, f"sqlite+aiosqlite:///{self.workdir / 'hookswitch.db'}",
            sip_port=free_udp_port(), http_port=free_tcp_port(), trunk_port=self.trunk_port)
        self.server.config.write_text(provisioning(
            http=self.server.http_port, sip=self.server.sip_port,
            database=self.server.database, trunk_port=self.trunk_port, webhook=self.webhook))

    @property
    def sip(self) -> tuple[str, int]:
        return self.server.sip

    @property
    def http(self) -> str:
        return self.server.http

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def start(self) -> None:
        self.server.start(timeout=60)

    def stop(self) -> int:
        """SIGTERM (the events worker ignores it), SIGKILL after ``stop_grace`` s: the exit
        code, negative when it had to be killed."""
        process = self.server.process
        return process.stop(grace=self.stop_grace) if process is not None else 0


@dataclass
class BareSippy:
    """sippy's own ``b2bua_simple``: every INVITE is bridged to one fixed next hop."""

    workdir: Path
    next_hop: tuple[str, int]
    proc: Proc | None = None

    def __post_init__(self) -> None:
        self.sip_port = free_udp_port()

    @property
    def sip(self) -> tuple[str, int]:
        return (HOST, self.sip_port)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.proc = processes.start(
            "b2bua_simple",
            [sys.executable, "-m", "bench.bare_sippy", "-f", "-l", HOST,
             "-p", str(self.sip_port), "-n", f"{self.next_hop[0]}:{self.next_hop[1]}"],
            self.workdir / "b2bua_simple.log", cwd=ROOT, env={"SIPLOG_BEND": "none"},
        )
        wait_until(lambda: answers_sip(self.sip), 30, 0.2,
                         f"b2bua_simple does not answer, see {self.proc.log}")

    def stop(self) -> int:
        return self.proc.stop(grace=10) if self.proc is not None else 0


def answers_sip(address: tuple[str, int]) -> bool:
    """True once something on ``address`` answers an OPTIONS (any status)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(0.5)
        port = sock.getsockname()[1]
        tag = uuid.uuid4().hex[:8]
        message = (
            f"OPTIONS sip:{address[0]}:{address[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bK{tag};rport\r\n"
            f"From: <sip:bench@{HOST}:{port}>;tag={tag}\r\n"
            f"To: <sip:{address[0]}:{address[1]}>\r\n"
            f"Call-ID: {tag}@bench\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(message.encode(), address)
        try:
            return sock.recv(65535).startswith(b"SIP/2.0 ")
        except OSError:
            return False


@dataclass
class Receiver:
    """The product's webhook receiver in its own process, printing nothing and logging each
    event's arrival to ``events.log`` (read back by ``callrate.read_events``)."""

    workdir: Path
    proc: Proc | None = None

    def __post_init__(self) -> None:
        self.port = free_tcp_port()
        self.events = self.workdir / "events.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/events"

    def start(self) -> None:
        self.proc = processes.start(
            "receiver", [sys.executable, "-m", "hookswitch.events.receiver",
                         "--port", str(self.port), "--latency-log", str(self.events), "--quiet"],
            self.workdir / "receiver.log", cwd=ROOT,
        )
        wait_until(self._up, 20, 0.1, "webhook receiver did not start")

    def _up(self) -> bool:
        try:
            return httpx.post(self.url, content=b"{}", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        return self.proc.stop(grace=5) if self.proc is not None else 0
