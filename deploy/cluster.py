"""``make cluster``: a two-node hookswitch behind Kamailio on this machine (docs/CLUSTER.md).

    python -m deploy.cluster [--db URL] [--edge-port 5060] [--http-ports 8081,8082]
                             [--sip-ports 5081,5082] [--workdir var/cluster]

Kamailio (the edge, ``deploy/kamailio/kamailio.cfg``) on 127.0.0.1:5060, and nodes n1 and
n2 (``hookswitch serve --demo --node-id nN --edge 127.0.0.1:5060``) on the machine's
PostgreSQL (database ``test``, or ``HOOKSWITCH_DB`` / ``--db``) and Redis
(``redis://127.0.0.1:6379``, or ``HOOKSWITCH_REDIS``). Prints the addresses and the demo
credentials and runs until Ctrl-C (or SIGTERM); every process it started is stopped on the
way out. Logs: ``<workdir>/edge.log``, ``n1.log``, ``n2.log``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import httpx

from harness import processes
from harness.edge import Edge
from harness.processes import Proc, read_log
from harness.wait import WaitTimeout, wait_until

HOOKSWITCH = Path(sys.executable).with_name("hookswitch")
DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
HOST = "127.0.0.1"


def _ports(text: str) -> list[int]:
    return [int(port) for port in text.split(",")]


def _node(workdir: Path, number: int, database: str, redis: str, http: int, sip: int,
          edge: str) -> Proc:
    config = workdir / f"n{number}.toml"
    # The demo tenant with this cluster's Redis; everything else comes from the flags.
    config.write_text(f'[server]\nredis = "{redis}"\n')
    return processes.start(
        f"hookswitch-n{number}",
        [str(HOOKSWITCH), "serve", "--demo", "--config", str(config), "--db", database,
         "--http", f"{HOST}:{http}", "--sip", f"{HOST}:{sip}",
         "--node-id", f"n{number}", "--edge", edge],
        workdir / f"n{number}.log", cwd=workdir, env={"PYTHONUNBUFFERED": "1"})


def _healthy(proc: Proc, http: int) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"{proc.name} exited with {proc.returncode}:\n{read_log(proc.log)}")
    try:
        return httpx.get(f"http://{HOST}:{http}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("HOOKSWITCH_DB", DEFAULT_DB))
    parser.add_argument("--redis",
                        default=os.environ.get("HOOKSWITCH_REDIS", "redis://127.0.0.1:6379"))
    parser.add_argument("--edge-port", type=int, default=5060)
    parser.add_argument("--http-ports", type=_ports, default=[8081, 8082])
    parser.add_argument("--sip-ports", type=_ports, default=[5081, 5082])
    parser.add_argument("--workdir", type=Path, default=Path("var/cluster"))
    args = parser.parse_args(argv)
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    edge = Edge(workdir, [(HOST, port) for port in args.sip_ports], port=args.edge_port)
    nodes: list[Proc] = []
    try:
        edge.start()
        for number, (http, sip) in enumerate(zip(args.http_ports, args.sip_ports,
                                                 strict=True), start=1):
            node = _node(workdir, number, args.db, args.redis, http, sip, edge.hostport)
            nodes.append(node)
            # One after the other: the first migrates and provisions the database.
            wait_until(lambda node=node, http=http: _healthy(node, http), 60,  # type: ignore[misc]
                       message=f"node n{number} did not become healthy (see {node.log})")
        print(_banner(workdir, edge.hostport, args.http_ports, args.sip_ports, args.db,
                      args.redis), flush=True)
        while not stop.wait(1.0):  # a Ctrl-C check, not a synchronisation
            for node in nodes:
                if node.poll() is not None:
                    print(f"{node.name} exited with {node.returncode}; see {node.log}",
                          file=sys.stderr)
                    return 1
        return 0
    except (WaitTimeout, RuntimeError, AssertionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for node in reversed(nodes):
            node.stop()
        edge.stop()


def _banner(workdir: Path, edge: str, https: list[int], sips: list[int],
            database: str, redis: str) -> str:
    # The credentials, as the first node printed them for its demo tenant.
    demo = read_log(workdir / "n1.log").split("hookswitch demo tenant", 1)[-1]
    credentials = "\n".join(line for line in demo.splitlines()[1:]
                            if line.startswith("  "))
    lines = [
        "hookswitch cluster (Ctrl-C stops it)",
        f"  SIP edge   {edge} (UDP, Kamailio): phones register and call here only",
        *(f"  node n{n}    HTTP http://{HOST}:{http}  SIP {HOST}:{sip}"
          for n, (http, sip) in enumerate(zip(https, sips, strict=True), start=1)),
        f"  database   {database.split('@')[-1]}  Redis {redis.split('@')[-1]}",
        f"  logs       {workdir}/edge.log, n1.log, n2.log",
        "demo tenant (do not expose these credentials beyond this machine)",
        credentials,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
