"""REGISTER against the real server with sipp and baresip."""

from __future__ import annotations

from pathlib import Path

from harness import free_udp_port, sipp_register, wait_until
from harness.server import OTHER_PASSWORD, PASSWORDS, TENANT, RunningServer
from harness.server import user_id_for as _uid


def bindings(server: RunningServer, extension: str, tenant: str = TENANT) -> list[dict]:
    return server.query(
        "SELECT contact, source_port FROM bindings WHERE user_id = :u", u=_uid(tenant, extension)
    )


def wait_bindings(server: RunningServer, extension: str, count: int) -> list[dict]:
    """Bindings are written just after the 200 OK leaves: wait for the database to agree."""
    seen: list[dict] = []

    def settled() -> bool:
        nonlocal seen
        seen = bindings(server, extension)
        return len(seen) == count

    wait_until(settled, 10, message=f"{extension}: expected {count} bindings, saw {seen}")
    return seen


def test_right_password_registers_and_is_stored(server: RunningServer, tmp_path: Path) -> None:
    port = free_udp_port()
    assert sipp_register(server.sip, "200", PASSWORDS["200"], port, workdir=tmp_path) == 0
    [binding] = wait_bindings(server, "200", 1)
    assert binding["source_port"] == port


def test_wrong_password_and_unknown_user_get_the_same_refusal(
    server: RunningServer, tmp_path: Path
) -> None:
    wrong = sipp_register(server.sip, "200", "not-the-password", free_udp_port(), workdir=tmp_path)
    unknown = sipp_register(server.sip, "299", "whatever", free_udp_port(), workdir=tmp_path)
    assert wrong != 0 and unknown != 0
    assert bindings(server, "200") == []


def test_a_user_cannot_register_as_a_user_of_another_tenant(
    server: RunningServer, tmp_path: Path
) -> None:
    # 300 belongs to "other.test"; its password does not open 200 of the default tenant,
    # and 200's own password does not work inside the other tenant's domain.
    assert sipp_register(server.sip, "200", OTHER_PASSWORD, free_udp_port(),
                         workdir=tmp_path) != 0
    assert sipp_register(server.sip, "200", PASSWORDS["200"], free_udp_port(),
                         workdir=tmp_path, domain="other.test") != 0
    assert sipp_register(server.sip, "300", OTHER_PASSWORD, free_udp_port(),
                         workdir=tmp_path, domain="other.test") == 0


def test_unregister_removes_the_binding(server: RunningServer, tmp_path: Path) -> None:
    port = free_udp_port()
    assert sipp_register(server.sip, "210", PASSWORDS["210"], port, workdir=tmp_path) == 0
    wait_bindings(server, "210", 1)
    assert sipp_register(server.sip, "210", PASSWORDS["210"], port, workdir=tmp_path,
                         expires=0) == 0
    wait_bindings(server, "210", 0)


def test_baresip_registers_and_bindings_survive_a_restart(
    server: RunningServer, phone
) -> None:  # type: ignore[no-untyped-def]
    phone = phone("210")
    wait_bindings(server, "210", 1)
    assert server.stop() == 0
    server.start()
    assert len(bindings(server, "210")) == 1
