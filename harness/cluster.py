"""A cluster for tests: nodes of ``hookswitch serve`` on one fresh PostgreSQL database and
the machine's Redis, each started with ``--node-id`` and ``--edge``. The edge (Kamailio) is
started by ``harness/edge.py``; a test that needs no edge still gives the nodes its address
(a node's phones may register with it directly).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .database import fresh_database
from .edge import Edge
from .ports import free_udp_port
from .server import RunningServer, new_server
from .sipp import sipp_register

REDIS = os.environ.get("HOOKSWITCH_TEST_REDIS", "redis://127.0.0.1:6379")


@dataclass(frozen=True)
class EdgeAddress:
    """Where phones register in a cluster: what ``phone(..., server=)`` and sipp need."""

    sip: tuple[str, int]


@dataclass
class Cluster:
    database: str
    edge: tuple[str, int]
    nodes: list[RunningServer] = field(default_factory=list)
    kamailio: Edge | None = None

    def node(self, number: int) -> RunningServer:
        """Node 1, node 2, ... as the tests name them."""
        return self.nodes[number - 1]

    @property
    def phones(self) -> EdgeAddress:
        """The one address phones use (the edge); ``phone(ext, server=cluster.phones)``."""
        return EdgeAddress(self.edge)

    def holder(self, leg_id: str) -> RunningServer:
        """The node whose switch holds a leg (``legs.node_id``)."""
        [row] = self.nodes[0].query("SELECT node_id FROM legs WHERE id = :id", id=leg_id)
        return self.node(int(str(row["node_id"]).removeprefix("n")))


@contextmanager
def cluster(workdir: Path, nodes: int = 2, *, edge_port: int | None = None,
            start: bool = True, server_extra: str = "", edge: bool = True,
            **server_kwargs: object) -> Iterator[Cluster]:
    """``nodes`` nodes (node ids ``n1``, ``n2``, ...) on a fresh database, started one
    after another (each ready before the next starts), behind Kamailio (``edge``),
    stopped and dropped after;
    ``server_extra`` goes into each one's ``[server]``."""
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database(workdir, "postgresql"))
        address = ("127.0.0.1", edge_port or free_udp_port())
        result = Cluster(database, address)
        for number in range(1, nodes + 1):
            folder = workdir / f"n{number}"
            folder.mkdir()
            server = new_server(folder, database,
                                server_extra=f'redis = "{REDIS}"\n{server_extra}',
                                **server_kwargs)  # type: ignore[arg-type]
            server.extra_args = ["--node-id", f"n{number}",
                                 "--edge", f"{address[0]}:{address[1]}"]
            result.nodes.append(server)
            stack.callback(_stop, server)
        if start:
            for server in result.nodes:
                # Generous: several nodes start at once on a loaded 2-core machine.
                server.start(timeout=60)
        if edge:
            # After the nodes: its dispatcher starts with every node up (probes then mark
            # a node that stops answering down, and up again when it is back).
            result.kamailio = Edge(workdir, [server.sip for server in result.nodes],
                                   port=address[1])
            result.kamailio.start()
            stack.callback(result.kamailio.stop)
        yield result


def _stop(server: RunningServer) -> None:
    if server.process is not None and server.process.poll() is None:
        server.stop()


def registers_handled(node: RunningServer) -> float:
    """REGISTER requests the node has received (its ``/metrics``)."""
    text = httpx.get(f"{node.http}/metrics", timeout=5).text
    match = re.search(r'^hookswitch_sip_messages_total\{direction="in",message="REGISTER"\} '
                      r"(\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def register_through(nodes: Cluster, number: int, extension: str, password: str,
                     port: int, workdir: Path) -> None:
    """REGISTER ``extension`` from 127.0.0.1:``port`` through the edge so that node
    ``number`` handles it. The edge picks a node by a hash of the Call-ID: Call-IDs of a
    fixed series are tried (the same every run, so the same attempt wins every time) until
    one reaches that node."""
    node = nodes.node(number)
    for attempt in range(32):
        before = registers_handled(node)
        code = sipp_register(nodes.edge, extension, password, port, workdir=workdir,
                             extra_args=["-cid_str", f"reg-{extension}-{attempt}-%u@%s"])
        if code != 0:
            raise AssertionError(f"REGISTER of {extension} through the edge failed ({code})")
        if registers_handled(node) > before:
            return
    raise AssertionError(f"no Call-ID of the series reached node {number}")
