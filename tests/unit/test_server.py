"""What /healthz says about the server, from the server's own state."""

from __future__ import annotations

from dataclasses import dataclass

from hookswitch.config import Provisioning
from hookswitch.server import ServeOptions, Server


@dataclass
class Gateway:
    alive: bool = True

    def threads_alive(self) -> bool:
        return self.alive


def test_health_says_why_it_is_not_ok() -> None:
    server = Server(Provisioning(), ServeOptions(http="127.0.0.1:1", sip="127.0.0.1:2",
                                                 database="sqlite+aiosqlite:///x.db"))
    gateway = Gateway()
    assert server.health(gateway) == "starting"  # type: ignore[arg-type]
    server.ready = True
    assert server.health(gateway) == "ok"  # type: ignore[arg-type]
    gateway.alive = False
    assert server.health(gateway) == "sip-down"  # type: ignore[arg-type]
