"""``make cluster`` (``python -m deploy.cluster``): two nodes behind Kamailio, one address."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from harness import free_udp_port, sipp_register
from harness.database import fresh_database
from harness.ports import free_tcp_port
from harness.wait import wait_until


def test_make_cluster_serves_a_phone_through_the_edge_and_stops_on_ctrl_c(
    tmp_path: Path
) -> None:
    edge, sips = free_udp_port(), [free_udp_port(), free_udp_port()]
    https = [free_tcp_port(), free_tcp_port()]
    with fresh_database(tmp_path, "postgresql") as database:
        out = (tmp_path / "out.txt").open("w")
        runner = subprocess.Popen(
            [sys.executable, "-m", "deploy.cluster", "--db", database,
             "--edge-port", str(edge), "--http-ports", ",".join(map(str, https)),
             "--sip-ports", ",".join(map(str, sips)), "--workdir", str(tmp_path / "cluster")],
            stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
        try:
            printed = lambda: (tmp_path / "out.txt").read_text()  # noqa: E731
            wait_until(lambda: "demo tenant" in printed() or runner.poll() is not None, 120,
                       message="make cluster printed nothing")
            assert f"SIP edge   127.0.0.1:{edge}" in printed(), printed()
            assert "210 Jane Doe  SIP user 210 password demo-210-pass" in printed()
            # A phone registers with the edge's address only; both nodes know it at once.
            port = free_udp_port()
            assert sipp_register(("127.0.0.1", edge), "210", "demo-210-pass", port,
                                 workdir=tmp_path) == 0
            for http in https:
                devices = httpx.get(f"http://127.0.0.1:{http}/metrics", timeout=5).text
                wait_until(lambda http=http: "hookswitch_registered_devices 1.0" in httpx.get(
                    f"http://127.0.0.1:{http}/metrics", timeout=5).text, 10,
                    message=f"node on {http} does not know the phone: {devices[-300:]}")
        finally:
            runner.send_signal(signal.SIGINT)
            code = runner.wait(30)
            out.close()
        assert code == 0, (tmp_path / "out.txt").read_text()
