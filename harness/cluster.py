"""A cluster for tests: nodes of ``hookswitch serve`` on one fresh PostgreSQL database and
the machine's Redis, each started with ``--node-id`` and ``--edge``. The edge (Kamailio) is
started by ``harness/edge.py``; a test that needs no edge still gives the nodes its address
(a node's phones may register with it directly).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .database import fresh_database
from .ports import free_udp_port
from .server import RunningServer, new_server

REDIS = os.environ.get("HOOKSWITCH_TEST_REDIS", "redis://127.0.0.1:6379")


@dataclass
class Cluster:
    database: str
    edge: tuple[str, int]
    nodes: list[RunningServer] = field(default_factory=list)

    def node(self, number: int) -> RunningServer:
        """Node 1, node 2, ... as the tests name them."""
        return self.nodes[number - 1]


@contextmanager
def cluster(workdir: Path, nodes: int = 2, *, edge_port: int | None = None,
            start: bool = True, server_extra: str = "",
            **server_kwargs: object) -> Iterator[Cluster]:
    """``nodes`` nodes (node ids ``n1``, ``n2``, ...) on a fresh database, started one
    after another (each ready before the next starts), stopped and dropped after;
    ``server_extra`` goes into each one's ``[server]``."""
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database(workdir, "postgresql"))
        edge = ("127.0.0.1", edge_port or free_udp_port())
        result = Cluster(database, edge)
        for number in range(1, nodes + 1):
            folder = workdir / f"n{number}"
            folder.mkdir()
            server = new_server(folder, database, server_extra=f'redis = "{REDIS}"\n{server_extra}',
                                **server_kwargs)  # type: ignore[arg-type]
            server.extra_args = ["--node-id", f"n{number}", "--edge", f"{edge[0]}:{edge[1]}"]
            result.nodes.append(server)
            stack.callback(_stop, server)
        if start:
            for server in result.nodes:
                server.start()
        yield result


def _stop(server: RunningServer) -> None:
    if server.process is not None and server.process.poll() is None:
        server.stop()
