"""The example integrator (``examples/integrator/``) as a real process, started the way
the README runs it (``python -m examples.integrator`` from the repository's root), on an
ephemeral loopback port; ready once its page answers."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from . import processes
from .ports import HOST, free_tcp_port
from .processes import ChildProcess, Proc, read_log
from .wait import WaitTimeout, wait_until

ROOT = Path(__file__).resolve().parents[1]


class IntegratorProcess(ChildProcess):
    """One example integrator for ``hookswitch_url``; ``stop()`` always ends it."""

    def __init__(self, workdir: Path, hookswitch_url: str, *, port: int | None = None,
                 webhook_secret: str | None = None, extra_args: list[str] | None = None,
                 start_timeout: float = 20.0) -> None:
        self.workdir = workdir
        self.hookswitch_url = hookswitch_url
        self.port = port if port is not None else free_tcp_port()
        self.webhook_secret = webhook_secret
        self.extra_args = extra_args or []
        self.start_timeout = start_timeout
        self._proc: Proc | None = None

    @property
    def url(self) -> str:
        """Its ``/``: the page, and the redirect_url it gives hookswitch."""
        return f"http://{HOST}:{self.port}/"

    # Its URLs as an [[integrations]] entry names them (known before it starts, so that
    # hookswitch can be provisioned first).
    @property
    def activation_url(self) -> str:
        return self.url + "telephony/activate"

    @property
    def deactivation_url(self) -> str:
        return self.url + "telephony/deactivate"

    @property
    def webhook_url(self) -> str:
        return self.url + "telephony/events"

    @property
    def log_file(self) -> Path:
        return self.workdir / f"integrator-{self.port}.log"

    def log(self) -> str:
        return read_log(self.log_file)

    def start(self) -> IntegratorProcess:
        if self._proc is not None:
            raise RuntimeError("integrator already started")
        # Secrets through the environment, as the README advises (not in the process list).
        environment = {"PYTHONUNBUFFERED": "1"}
        if self.webhook_secret is not None:
            environment["INTEGRATOR_WEBHOOK_SECRET"] = self.webhook_secret
        self._proc = processes.start(
            "integrator",
            [sys.executable, "-m", "examples.integrator", "--listen", f"{HOST}:{self.port}",
             "--hookswitch", self.hookswitch_url, *self.extra_args],
            self.log_file, cwd=ROOT, env=environment)
        try:
            wait_until(self._ready, self.start_timeout)
        except WaitTimeout:
            self.stop()
            raise WaitTimeout(f"the integrator did not come up:\n{self.log()}") from None
        return self

    def _ready(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise AssertionError(f"the integrator exited with {self._proc.returncode}:\n"
                                 f"{self.log()}")
        try:
            return httpx.get(self.url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int | None:
        """SIGTERM (uvicorn shuts down cleanly), then SIGKILL; the exit code."""
        if self._proc is None:
            return None
        return self._proc.stop(grace=5.0)
