"""``hookswitch serve`` as a real process, on ephemeral ports, stopped after the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.ports import free_tcp_port, free_udp_port
from harness.wait import wait_until
from hookswitch.directory.provisioning import user_id_for  # noqa: F401  (re-exported for tests)
from tests.support.database import query

HOOKSWITCH = Path(sys.executable).with_name("hookswitch")
TENANT = "b11d749b-8eb7-4236-a068-3d94ba3860d6"
OTHER_TENANT = "5f0c7a52-9d61-4c3e-b1a4-0c2f6d1e9a77"
PASSWORDS = {"200": "pass-200-john", "210": "pass-210-jane", "220": "pass-220-bob"}
OTHER_PASSWORD = "pass-300-other"


def provisioning_toml(
    *, http: str, sip: str, database: str, trunk_port: int | None, ring_timeout: float,
    click_to_dial_timeout: float = 30, auto_answer: str = "", webhook: str = "",
    server_extra: str = "",
) -> str:
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

[[tenants.users]]
extension = "210"
name = "Jane Doe"
sip_password = "{PASSWORDS['210']}"
{aa("210")}
api_token = "tok-jane"
numbers = ["+3228990210"]

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
"""


@dataclass
class RunningServer:
    workdir: Path
    database: str
    sip_port: int
    http_port: int
    trunk_port: int | None
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def sip(self) -> tuple[str, int]:
        return ("127.0.0.1", self.sip_port)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> str:
        return (self.workdir / "server.log").read_text(errors="replace")

    def start(self, timeout: float = 20.0) -> None:
        self.process = self._spawn()
        wait_until(self.healthy, timeout, message=f"server did not become healthy:\n{self.log}")

    def start_refused(self, timeout: float = 20.0) -> tuple[int, str]:
        """Start it expecting it to refuse: (exit code, what it printed)."""
        before = len(self.log) if (self.workdir / "server.log").exists() else 0
        process = self._spawn()
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"the server did not refuse to start:\n{self.log}") from None
        return code, self.log[before:]

    def _spawn(self) -> subprocess.Popen[bytes]:
        # The installed command, as a user runs it (``python -m`` would put the working
        # directory on the path).
        log = (self.workdir / "server.log").open("ab")
        return subprocess.Popen(
            [str(HOOKSWITCH), "serve", "--config", str(self.workdir / "hookswitch.toml"),
             *self.extra_args],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
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
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server ignored signal {sig}:\n{self.log}") from None

    def worker_pids(self) -> list[int]:
        """The server's running child processes: its events worker."""
        assert self.process is not None
        return _children(self.process.pid)

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
               server_extra: str = "") -> RunningServer:
    server = RunningServer(
        workdir=workdir,
        database=database,
        sip_port=free_udp_port(),
        http_port=free_tcp_port(),
        trunk_port=free_udp_port() if trunk else None,
    )
    (workdir / "hookswitch.toml").write_text(
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
        )
    )
    return server


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (state, parent, ...); None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def running(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"  # a zombie has exited


def _children(pid: int) -> list[int]:
    """Running processes whose parent is ``pid`` (the server's events worker)."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and running(int(entry.name))
            and (_stat(int(entry.name)) or ["", "0"])[1] == str(pid)]
