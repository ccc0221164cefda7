"""A second server started by mistake: it refuses at once and changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from harness.ports import free_tcp_port, free_udp_port
from harness.receiver import Receiver
from harness.server import RunningServer


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def twin(first: RunningServer, folder: Path, *, sip: int | None = None,
         http: int | None = None, database: str | None = None) -> RunningServer:
    """A second server from the first one's file, with some of its addresses changed."""
    folder.mkdir()
    text = (first.workdir / "hookswitch.toml").read_text()
    second = RunningServer(workdir=folder, database=database or first.database,
                           sip_port=sip or first.sip_port, http_port=http or first.http_port,
                           trunk_port=first.trunk_port)
    text = text.replace(f'sip = "127.0.0.1:{first.sip_port}"',
                        f'sip = "127.0.0.1:{second.sip_port}"')
    text = text.replace(f'http = "127.0.0.1:{first.http_port}"',
                        f'http = "127.0.0.1:{second.http_port}"')
    text = re.sub(r'database = ".*"', f'database = "{second.database}"', text, count=1)
    (folder / "hookswitch.toml").write_text(text)
    return second


def test_a_second_server_on_a_taken_sip_port_refuses(
    server: RunningServer, tmp_path: Path, database: str
) -> None:
    other = twin(server, tmp_path / "second", http=free_tcp_port(),
                 database=f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    code, output = other.start_refused()
    assert code != 0
    assert f"cannot listen for SIP on 127.0.0.1:{server.sip_port}" in output
    assert "Nothing was changed" in output
    assert "Traceback" not in output


def test_a_second_server_on_a_taken_http_port_refuses(
    server: RunningServer, tmp_path: Path
) -> None:
    other = twin(server, tmp_path / "second", sip=free_udp_port(),
                 database=f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    code, output = other.start_refused()
    assert code != 0 and f"cannot listen for HTTP on 127.0.0.1:{server.http_port}" in output


@pytest.mark.parametrize("same_ports", [True, False], ids=["same-ports", "same-database"])
def test_a_second_start_on_the_same_database_leaves_the_first_and_its_calls_alone(
    server_factory, tmp_path: Path, phone, receiver: Receiver, same_ports: bool,
) -> None:  # type: ignore[no-untyped-def]
    # `make run` twice in one folder: the same file, the same database. Before, the second
    # applied provisioning (deleting the first one's webhook) and closed its live legs.
    first = server_factory(webhook=f'[[tenants.webhooks]]\nurl = "{receiver.url}"\n')
    jane = phone("210", server=first)
    john = phone("200", "auto", server=first)
    jane.dial(f"sip:200@127.0.0.1:{first.sip_port}")
    john.wait_event("CALL_ESTABLISHED")
    first.wait_states("210", ["RINGING", "ACTIVE"])
    if same_ports:
        second = twin(first, tmp_path / "second")
    else:
        second = twin(first, tmp_path / "second", sip=free_udp_port(), http=free_tcp_port())
    # The second one's file has no webhook: applying it would delete the first one's.
    config = second.workdir / "hookswitch.toml"
    config.write_text(config.read_text().replace(
        f'[[tenants.webhooks]]\nurl = "{receiver.url}"\n', ""))
    assert "[[tenants.webhooks]]" not in config.read_text()
    code, output = second.start_refused()
    assert code != 0, output
    assert "in use" in output and "Nothing was changed" in output
    assert len(first.query("SELECT id FROM webhooks")) == 1
    assert first.states(first.leg_for("210")["id"]) == ["RINGING", "ACTIVE"]
    assert httpx.get(first.http + "/healthz").status_code == 200
    # The first server carries on: the call ends normally, one HANGUP per leg.
    jane.hangup()
    john.wait_event("CALL_CLOSED")
    first.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(completed)"])
    first.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(completed)"])
    receiver.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(completed)"])


def test_a_file_in_the_working_directory_named_like_a_standard_module_is_harmless(
    server_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # The events worker used to start with `python -m` and import ./enum.py instead of
    # the standard library's.
    first = server_factory()
    first.stop()
    for name in ("enum.py", "re.py", "json.py"):
        (first.workdir / name).write_text("raise SystemExit('shadowed the standard library')\n")
    first.start()
    assert len(first.worker_pids()) == 1
