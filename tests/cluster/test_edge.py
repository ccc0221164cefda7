"""One hookswitch node behind Kamailio as the SIP edge (deploy/kamailio/kamailio.cfg):
phones use only the edge's address; the node registers them with the edge's Path, rings
them through it, and keeps it in every dialog's route set (Record-Route)."""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness import free_udp_port, sdp_direction
from harness.edge import Edge, FailingNode
from harness.fixtures import MakeBaresip, MakeSipp
from harness.server import PASSWORDS, TENANT, RunningServer, new_server
from harness.sipp import SippProcess
from harness.wait import wait_until

URL = "/v3/call_control/"
TOKENS = {"210": "tok-jane", "200": "tok-john"}
ANSWERED = ["RINGING", "ACTIVE", "HANGUP(completed)"]
# Another loopback address: a second machine, as far as the node's tarpit can tell.
GUESSER_HOST = "127.0.0.2"


@dataclass
class Cluster:
    node: RunningServer
    edge: Edge

    def dial_uri(self, target: str) -> str:
        return f"sip:{target}@{self.edge.hostport}"


@pytest.fixture
def cluster(tmp_path: Path, database: str) -> Iterator[Cluster]:
    """One node (its own SQLite database) behind its own Kamailio, on ports of its own."""
    edge_port = free_udp_port()
    workdir = tmp_path / "node1"
    workdir.mkdir()
    # The default node id: the events worker records dialogs under it whatever [server]
    # node_id says (not wired yet), and the crash test needs them found again at start.
    node = new_server(workdir, database, server_extra=f'edge = "127.0.0.1:{edge_port}"')
    node.start()
    try:
        with Edge(tmp_path / "edge", [node.sip], port=edge_port) as edge:
            yield Cluster(node, edge)
    finally:
        node.stop()


def register(cluster: Cluster, make_sipp: MakeSipp, extension: str, port: int,
             password: str | None = None, host: str | None = None) -> SippProcess:
    """REGISTER ``extension`` through the edge from ``host``:``port``; the finished run."""
    extra = ["-i", host, "-mi", host] if host is not None else []
    sipp = make_sipp("register.xml", local_port=port, remote=cluster.edge.address,
                     service=extension, auth=(extension, password or PASSWORDS[extension]),
                     extra_args=extra, timeout=20)
    sipp.wait(30)
    return sipp


def phone(cluster: Cluster, make_sipp: MakeSipp, extension: str,
          scenario: str, port: int | None = None) -> SippProcess:
    """A sipp UAS registered as ``extension`` through the edge (on ``port`` if given)."""
    port = port if port is not None else free_udp_port()
    registered = register(cluster, make_sipp, extension, port)
    assert registered.returncode == 0, registered.diagnostics() + cluster.edge.log[-3000:]
    return make_sipp(scenario, local_port=port, remote=None)


def command(cluster: Cluster, name: str, extension: str, **payload: str) -> httpx.Response:
    body = {"command": name, "user": {"tenant_id": TENANT, "user_extension": extension},
            "payload": payload}
    return httpx.post(cluster.node.http + URL, json=body, timeout=10,
                      headers={"Authorization": f"Bearer {TOKENS[extension]}"})


def edge_route(cluster: Cluster, message: str) -> bool:
    """``message`` has a Route or Record-Route header naming the edge."""
    return any(line.split(":", 1)[0].strip().lower() in ("route", "record-route")
               and cluster.edge.hostport in line for line in message.splitlines())


def from_edge(cluster: Cluster, request: str) -> bool:
    """A request a phone received came through the edge: its top Via is the edge's (the
    edge took its own Route off, RFC 3261 16.4)."""
    vias = [line for line in request.splitlines() if line.lower().startswith(("via:", "v:"))]
    return bool(vias) and f" {cluster.edge.hostport};" in vias[0]


def test_register_through_the_edge_stores_its_path_and_the_phone_address(
    cluster: Cluster, make_sipp: MakeSipp
) -> None:
    port = free_udp_port()
    registered = register(cluster, make_sipp, "200", port)
    assert registered.returncode == 0, registered.diagnostics()
    # RFC 3327: the 200 returns the Path the registrar stored.
    [ok] = [m.text for m in registered.sip_messages()
            if m.direction == "received" and m.status == 200]
    assert "Path:" in ok and cluster.edge.hostport in ok
    rows = wait_until(lambda: cluster.node.query(
        "SELECT source_host, source_port, path FROM bindings"), 10)
    [row] = rows
    path = row["path"] if isinstance(row["path"], list) else json.loads(row["path"])
    [hop] = path
    assert cluster.edge.hostport in hop and "lr" in hop and "received=" in hop
    # The binding's source is the phone's own address, as the edge vouched for it.
    assert (row["source_host"], row["source_port"]) == ("127.0.0.1", port)


def test_a_call_through_the_edge_connects_and_the_caller_hangs_up(
    cluster: Cluster, make_sipp: MakeSipp
) -> None:
    callee = phone(cluster, make_sipp, "200", "uas_answer.xml")
    caller = make_sipp("uac_call.xml", local_port=free_udp_port(),
                       remote=cluster.edge.address, service="200",
                       auth=("210", PASSWORDS["210"]))
    assert caller.wait(20) == 0, caller.diagnostics() + cluster.edge.log[-3000:]
    assert callee.wait(20) == 0, callee.diagnostics()
    # The node rang the phone through the edge (its Path, consumed there), and the edge
    # record-routed both dialogs: the caller's BYE carried it as a Route.
    [invite] = callee.received("INVITE")
    assert invite.startswith("INVITE sip:200@127.0.0.1:") and edge_route(cluster, invite)
    assert from_edge(cluster, invite) and "Route:" not in invite.replace("Record-Route:", "")
    [bye] = [m.text for m in caller.sip_messages() if m.direction == "sent"
             and m.method == "BYE"]
    assert edge_route(cluster, bye)
    assert from_edge(cluster, callee.received("BYE")[-1])
    cluster.node.wait_states("210", ANSWERED)
    cluster.node.wait_states("200", ANSWERED)


def test_the_callee_hangs_up_through_the_edge(
    cluster: Cluster, make_sipp: MakeSipp
) -> None:
    callee = phone(cluster, make_sipp, "200", "uas_answer_then_bye.xml")
    caller = make_sipp("uac_call_remote_bye.xml", local_port=free_udp_port(),
                       remote=cluster.edge.address, service="200",
                       auth=("210", PASSWORDS["210"]))
    assert callee.wait(20) == 0, callee.diagnostics() + cluster.edge.log[-3000:]
    assert caller.wait(20) == 0, caller.diagnostics()
    [bye] = [m.text for m in callee.sip_messages() if m.direction == "sent"
             and m.method == "BYE"]
    assert edge_route(cluster, bye)
    [received] = caller.received("BYE")
    assert from_edge(cluster, received)  # the node's BYE followed the caller's route set
    cluster.node.wait_states("210", ANSWERED)
    cluster.node.wait_states("200", ANSWERED)


def test_hold_resume_and_hangup_by_api_go_through_the_edge(
    cluster: Cluster, make_sipp: MakeSipp
) -> None:
    callee = phone(cluster, make_sipp, "200", "uas_hold_resume.xml")
    caller = make_sipp("uac_call_remote_bye.xml", local_port=free_udp_port(),
                       remote=cluster.edge.address, service="200",
                       auth=("210", PASSWORDS["210"]))
    jane_leg = cluster.node.wait_states("210", ["RINGING", "ACTIVE"])
    john_leg = cluster.node.wait_states("200", ["RINGING", "ACTIVE"])
    for name, extension, leg, count in (("hold", "210", jane_leg, 2),
                                        ("resume", "210", jane_leg, 3),
                                        ("hold", "200", john_leg, 4),
                                        ("resume", "200", john_leg, 5)):
        answer = command(cluster, name, extension, call_leg_id=leg)
        assert answer.status_code == 200, answer.text
        callee.wait_received("INVITE", count=count)
    reinvites = caller.received("INVITE")
    assert [sdp_direction(invite) for invite in reinvites] == [
        "inactive", "sendrecv", "sendonly", "sendrecv"]
    assert all(from_edge(cluster, invite) for invite in reinvites)
    assert command(cluster, "hangup", "210", call_leg_id=jane_leg).status_code == 200
    assert callee.wait(20) == 0, callee.diagnostics()  # each re-INVITE as expected, then BYE
    assert caller.wait(20) == 0, caller.diagnostics()
    assert from_edge(cluster, callee.received("BYE")[-1])
    assert from_edge(cluster, caller.received("BYE")[-1])
    events = ["RINGING", "ACTIVE", "HELD", "ACTIVE", "HELD", "ACTIVE", "HANGUP(api)"]
    cluster.node.wait_states("210", events)
    cluster.node.wait_states("200", events)


def test_click_to_dial_rings_the_users_phone_through_the_edge(
    cluster: Cluster, make_sipp: MakeSipp, make_baresip: MakeBaresip
) -> None:
    jane = make_baresip("210", PASSWORDS["210"], cluster.edge.address)
    jane.wait_registered()
    john = phone(cluster, make_sipp, "200", "uas_answer.xml")
    started = command(cluster, "click-to-dial", "210", destination="200")
    assert started.status_code == 202, started.text
    jane.incoming_call()
    [invite] = jane.received("INVITE")
    # Loose routing: the Request-URI is Jane's Contact, and the edge record-routed it
    # after taking its own Route (the Path) off.
    assert invite.startswith("INVITE sip:210") and edge_route(cluster, invite)
    jane.answer()
    john.wait_received("ACK")
    # The callee's SDP, in the dialog, through the edge.
    assert from_edge(cluster, jane.wait_received("INVITE", count=2)[-1])
    leg = cluster.node.wait_states("210", ["RINGING", "ACTIVE"])
    cluster.node.wait_states("200", ["RINGING", "ACTIVE"])
    assert command(cluster, "hangup", "210", call_leg_id=leg).status_code == 200
    assert from_edge(cluster, jane.wait_received("BYE")[-1])
    assert john.wait(20) == 0, john.diagnostics()
    cluster.node.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(api)"])


def test_the_tarpit_slows_the_guessing_phone_not_another_phone_of_that_user(
    cluster: Cluster, make_sipp: MakeSipp
) -> None:
    # 9 wrong passwords from one machine: its next challenge for 200 waits 2 s.
    for _ in range(9):
        guess = register(cluster, make_sipp, "200", free_udp_port(), "wrong-password",
                         host=GUESSER_HOST)
        assert guess.returncode == 1 and guess.final_code("REGISTER") == 403
    started = time.monotonic()
    registered = register(cluster, make_sipp, "200", free_udp_port())
    assert registered.returncode == 0, registered.diagnostics()
    # Through the edge every REGISTER arrives from the edge's address: keyed by that,
    # this phone's challenge would have waited 2 s too.
    assert time.monotonic() - started < 1.5
    held = [line for line in cluster.node.log.splitlines() if "sip.tarpit" in line]
    assert held and all(f"source={GUESSER_HOST} " in line for line in held)


def test_a_dead_node_is_marked_down_by_probing_and_skipped(
    tmp_path: Path, database: str, make_sipp: MakeSipp
) -> None:
    """The edge's list names a node that never answers besides the live one: probing marks
    it down within seconds, and from then on no request waits for it (Call-ID hashing
    would send about half of them there)."""
    edge_port = free_udp_port()
    workdir = tmp_path / "node1"
    workdir.mkdir()
    node = new_server(workdir, database, server_extra=f'edge = "127.0.0.1:{edge_port}"')
    node.start()
    dead = ("127.0.0.1", free_udp_port())  # nothing listens there
    try:
        with Edge(tmp_path / "edge", [dead, node.sip], port=edge_port) as edge:
            cluster = Cluster(node, edge)
            wait_until(lambda: f"edge: node down: sip:{dead[0]}:{dead[1]}" in edge.log, 10,
                       message=f"the dead node was not marked down:\n{edge.log[-3000:]}")
            port = free_udp_port()
            for _ in range(4):  # four Call-IDs for REGISTER, four for INVITE
                callee = phone(cluster, make_sipp, "200", "uas_answer.xml", port)
                caller = make_sipp("uac_call.xml", local_port=free_udp_port(),
                                   remote=edge.address, service="200",
                                   auth=("210", PASSWORDS["210"]), keys={"hold_ms": 100})
                assert caller.wait(30) == 0, caller.diagnostics() + edge.log[-3000:]
                assert callee.wait(10) == 0, callee.diagnostics()
            assert "node failed" not in edge.log, edge.log[-3000:]
            assert f"edge: node down: sip:{node.sip[0]}:{node.sip[1]}" not in edge.log
    finally:
        node.stop()


def test_a_node_answering_503_is_failed_over_to_the_next(
    tmp_path: Path, database: str, make_sipp: MakeSipp
) -> None:
    """A node up for the probes but failing requests 503: what Call-ID hashing sends there
    the edge sends on to the next node, so every REGISTER and the call still succeed."""
    edge_port = free_udp_port()
    workdir = tmp_path / "node1"
    workdir.mkdir()
    node = new_server(workdir, database, server_extra=f'edge = "127.0.0.1:{edge_port}"')
    node.start()
    try:
        with FailingNode() as failing, \
                Edge(tmp_path / "edge", [failing.address, node.sip], port=edge_port) as edge:
            cluster = Cluster(node, edge)
            port = free_udp_port()

            def registered_through_the_failing_node() -> bool:
                # A new Call-ID each time: about half of them hash to the failing node.
                sipp = register(cluster, make_sipp, "200", port)
                assert sipp.returncode == 0, sipp.diagnostics() + edge.log[-3000:]
                return "REGISTER" in failing.failed

            wait_until(registered_through_the_failing_node, 30, interval=0,
                       message="no REGISTER hashed to the failing node")
            assert "node failed (503)" in edge.log
            callee = make_sipp("uas_answer.xml", local_port=port, remote=None)
            caller = make_sipp("uac_call.xml", local_port=free_udp_port(),
                               remote=edge.address, service="200",
                               auth=("210", PASSWORDS["210"]), keys={"hold_ms": 100})
            assert caller.wait(30) == 0, caller.diagnostics() + edge.log[-3000:]
            assert callee.wait(10) == 0, callee.diagnostics()
            assert f"edge: node down: sip:{failing.address[0]}" not in edge.log
    finally:
        node.stop()


def final_status(to: tuple[str, int], request: str, timeout: float = 5.0) -> int:
    """Send ``request`` from a fresh loopback port to ``to``; its first final status."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        sock.sendto(request.replace("LOCAL", f"127.0.0.1:{sock.getsockname()[1]}").encode(),
                    to)

        def final() -> int | None:
            try:
                status = int(sock.recv(65535).decode(errors="replace").split(" ", 2)[1])
            except TimeoutError:
                return None
            return status if status >= 200 else None

        return wait_until(final, timeout, interval=0, message="no final answer")


def spoofed_trunk_invite(cluster: Cluster, to: tuple[str, int]) -> str:
    """An INVITE claiming (in the edge's header) to come from the tenant's trunk."""
    trunk = f"127.0.0.1:{cluster.node.trunk_port}"
    return "\r\n".join((
        f"INVITE sip:+3228990200@{to[0]}:{to[1]} SIP/2.0",
        f"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK{uuid.uuid4().hex};rport",
        "Max-Forwards: 70",
        f"From: <sip:+3228992675@{trunk}>;tag=spoof",
        f"To: <sip:+3228990200@{to[0]}:{to[1]}>",
        f"Call-ID: {uuid.uuid4().hex}@spoof",
        "CSeq: 1 INVITE",
        "Contact: <sip:+3228992675@LOCAL>",
        f"X-Hookswitch-Source: {trunk}",
        "Content-Length: 0",
        "", "",
    ))


def test_the_trunk_is_recognised_through_the_edge_and_its_address_cannot_be_claimed(
    cluster: Cluster, make_sipp: MakeSipp
) -> None:
    callee = phone(cluster, make_sipp, "200", "uas_answer.xml")
    # The carrier sends to the edge: the node knows it by the address the edge vouches for.
    carrier = make_sipp("uac_trunk_call.xml", local_port=cluster.node.trunk_port,
                        remote=cluster.edge.address, service="+3228990200",
                        keys={"caller": "+3228992675", "hold_ms": 100})
    assert carrier.wait(20) == 0, carrier.diagnostics() + cluster.edge.log[-3000:]
    assert callee.wait(10) == 0, callee.diagnostics()
    cluster.node.wait_states("200", ANSWERED)
    # A phone's copy of the header: the edge replaces it; sent to the node directly, it is
    # not from the edge. Either way the phone must authenticate.
    for to in (cluster.edge.address, cluster.node.sip):
        assert final_status(to, spoofed_trunk_invite(cluster, to)) == 401


def test_after_a_crash_the_byes_built_from_saved_dialogs_go_through_the_edge(
    cluster: Cluster, make_sipp: MakeSipp
) -> None:
    callee = phone(cluster, make_sipp, "200", "uas_answer.xml")
    caller = make_sipp("uac_call_remote_bye.xml", local_port=free_udp_port(),
                       remote=cluster.edge.address, service="200",
                       auth=("210", PASSWORDS["210"]))
    cluster.node.wait_states("200", ["RINGING", "ACTIVE"])

    def saved() -> list[dict[str, object]]:
        rows = cluster.node.query("SELECT dialog FROM dialogs")
        return rows if len(rows) == 2 else []

    for row in wait_until(saved, 10, message="the call's dialogs were not saved"):
        dialog = row["dialog"] if isinstance(row["dialog"], dict) else json.loads(
            str(row["dialog"]))
        # Both sides' route sets are the edge's Record-Route, and the next hop the edge.
        assert [cluster.edge.hostport in route for route in dialog["route_set"]] == [True]
        assert dialog["next_hop"] == list(cluster.edge.address)
    cluster.node.stop(signal.SIGKILL)
    cluster.node.start()  # ends what the crash left up: a BYE to each side
    assert caller.wait(20) == 0, caller.diagnostics()
    assert callee.wait(20) == 0, callee.diagnostics()
    assert from_edge(cluster, caller.received("BYE")[-1])
    assert from_edge(cluster, callee.received("BYE")[-1])
    cluster.node.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(failed)"])
