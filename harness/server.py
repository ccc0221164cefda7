"""``hookswitch serve`` as a real process: the installed command, with a provisioning file
in its folder, on ephemeral ports, ready once ``/healthz`` answers. The tests use it with the
provisioning below (``new_server``), the benchmark with its own users (``bench/systems.py``).
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hookswitch.directory.provisioning import user_id_for  # noqa: F401  (re-exported for tests)

from . import processes
from .database import query
from .ports import free_tcp_port, free_udp_port
from .processes import Proc, children, read_log
from .wait import WaitTimeout, wait_until

HOOKSWITCH = Path(sys.executable).with_name("hookswitch")
TENANT = "b11d749b-8eb7-4236-a068-3d94ba3860d6"
OTHER_TENANT = "5f0c7a52-9d61-4c3e-b1a4-0c2f6d1e9a77"
WEB_PASSWORDS = {"200": "web-pass-200-john", "210": "web-pass-210-jane"}
PASSWORDS = {"200": "pass-200-john", "210": "pass-210-jane", "220": "pass-220-bob"}
OTHER_PASSWORD = "pass-300-other"


def provisioning_toml(
    *, http: str, sip: str, database: str, trunk_port: int | None, ring_timeout: float,
    click_to_dial_timeout: float = 30, auto_answer: str = "", webhook: str = "",
    server_extra: str = "", extra: str = "",
) -> str:
    """The tests' provisioning file; ``extra`` is appended (top-level tables such as
    ``[[integrations]]``)."""
    trunk = (
        f'\n[[tenants.trunks]]\nname = "carrier"\naddress = "127.0.0.1:{trunk_port}"\n'
        if trunk_port
        else ""
    )
    def aa(extension: str) -> str:
        return "auto_answer = true" if extension == auto_answer else ""

    return f"""
[server]
http = "{http}"
sip = "{sip}"
database = "{database}"
default_tenant = "{TENANT}"
ring_timeout = {ring_timeout}
click_to_dial_timeout = {click_to_dial_timeout}
{server_extra}

[[tenants]]
id = "{TENANT}"
name = "Example"

[[tenants.users]]
extension = "200"
name = "John Doe"
sip_password = "{PASSWORDS['200']}"
{aa("200")}
api_token = "tok-john"
numbers = ["+3228990200"]
password = "{WEB_PASSWORDS['200']}"

[[tenants.users]]
extension = "210"
name = "Jane Doe"
sip_password = "{PASSWORDS['210']}"
{aa("210")}
api_token = "tok-jane"
numbers = ["+3228990210"]
password = "{WEB_PASSWORDS['210']}"

[[tenants.users]]
extension = "220"
name = "Bob Roe"
sip_password = "{PASSWORDS['220']}"
{aa("220")}
{trunk}
{webhook}
[[tenants]]
id = "{OTHER_TENANT}"
name = "Other"
sip_domain = "other.test"

[[tenants.users]]
extension = "300"
name = "Other Person"
sip_password = "{OTHER_PASSWORD}"
api_token = "tok-other"
{extra}
"""


@dataclass
class RunningServer:
    workdir: Path
    database: str
    sip_port: int
    http_port: int
    trunk_port: int | None
    process: Proc | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def config(self) -> Path:
        """The provisioning file it is started with (written by whoever makes it)."""
        return self.workdir / "hookswitch.toml"

    @property
    def sip(self) -> tuple[str, int]:
        return ("127.0.0.1", self.sip_port)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> str:
        return read_log(self.workdir / "server.log")

    def start(self, timeout: float = 20.0) -> None:
        self.process = self._spawn()
        try:
            wait_until(self.healthy, timeout)
        except WaitTimeout:
            raise WaitTimeout(f"server did not become healthy:\n{self.log}") from None

    def start_refused(self, timeout: float = 20.0) -> tuple[int, str]:
        """Start it expecting it to refuse: (exit code, what it printed)."""
        before = len(self.log)
        process = self._spawn()
        code = process.exited(timeout)
        process.stop(signal.SIGKILL)
        if code is None:
            raise AssertionError(f"the server did not refuse to start:\n{self.log}")
        return code, self.log[before:]

    def _spawn(self) -> Proc:
        # The installed command, as a user runs it (``python -m`` would put the working
        # directory on the path).
        return processes.start(
            "hookswitch", [str(HOOKSWITCH), "serve", "--config", str(self.config),
                           *self.extra_args],
            self.workdir / "server.log", cwd=self.workdir, env={"PYTHONUNBUFFERED": "1"},
        )

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log}")
        try:
            return httpx.get(f"{self.http}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` to the server alone (it stops its events worker itself) and return
        its exit code; one still running ``timeout`` s later is killed and fails the test."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            if self.process.exited(timeout) is None:
                self.process.stop(signal.SIGKILL)
                raise AssertionError(f"server ignored signal {sig}:\n{self.log}")
        return self.process.stop()  # it has exited: only forgotten

    def worker_pids(self) -> list[int]:
        """The server's running child processes: its events worker."""
        assert self.process is not None
        return children(self.process.pid)

    # --- what the server recorded ------------------------------------------------------

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return query(self.database, sql, **params)

    def legs(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM legs ORDER BY created_at, extension")

    def leg_for(self, extension: str) -> dict[str, Any]:
        rows = [leg for leg in self.legs() if leg["extension"] == extension]
        assert len(rows) == 1, f"expected one leg for {extension}, got {rows}"
        return rows[0]

    def states(self, leg_id: str) -> list[str]:
        rows = self.query(
            "SELECT state, reason FROM leg_changes WHERE leg_id = :leg ORDER BY sequence",
            leg=leg_id,
        )
        return [row["state"] + (f"({row['reason']})" if row["reason"] else "") for row in rows]

    def wait_states(self, extension: str, expected: list[str], timeout: float = 10.0) -> str:
        """Wait until the extension's only leg went through exactly ``expected``."""
        seen: list[str] = []

        def done() -> bool:
            nonlocal seen
            legs = [leg for leg in self.legs() if leg["extension"] == extension]
            seen = self.states(legs[0]["id"]) if len(legs) == 1 else [f"{len(legs)} legs"]
            return seen == expected

        wait_until(done, timeout, message=f"leg of {extension}: expected {expected}, saw {seen}")
        return str(self.leg_for(extension)["id"])


def new_server(workdir: Path, database: str, *, trunk: bool = True,
               ring_timeout: float = 60.0, click_to_dial_timeout: float = 30.0,
               auto_answer: str = "", webhook: str = "",
               server_extra: str = "", extra: str = "") -> RunningServer:
    server = RunningServer(
        workdir=workdir,
        database=database,
        sip_port=free_udp_port(),
        http_port=free_tcp_port(),
        trunk_port=free_udp_port() if trunk else None,
    )
    server.config.write_text(
        provisioning_toml(
            http=f"127.0.0.1:{server.http_port}",
            sip=f"127.0.0.1:{server.sip_port}",
            database=database,
            trunk_port=server.trunk_port,
            ring_timeout=ring_timeout,
            click_to_dial_timeout=click_to_dial_timeout,
            auto_answer=auto_answer,
            webhook=webhook,
            server_extra=server_extra,
            extra=extra,
        )
    )
    return server

