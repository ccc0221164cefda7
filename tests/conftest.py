from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from harness.baresip import Baresip
from harness.browser import browser_page  # noqa: F401
from harness.database import fresh_database
from harness.fixtures import make_baresip, make_integrator, make_sipp  # noqa: F401
from harness.server import PASSWORDS, RunningServer, new_server
from tests.support.api import Api, running_api


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path) as url:
        yield url


@pytest.fixture
def server_factory(tmp_path: Path, database: str) -> Iterator:
    """Make (and always stop) hookswitch processes for this test."""
    started: list[RunningServer] = []

    def make(**options: object) -> RunningServer:
        workdir = tmp_path / f"server{len(started)}"
        workdir.mkdir()
        server = new_server(workdir, database, **options)  # type: ignore[arg-type]
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory) -> RunningServer:  # type: ignore[no-untyped-def]
    return server_factory()


MakePhone = Callable[..., Baresip]


@pytest.fixture
def phone(request: pytest.FixtureRequest, make_baresip: Callable[..., Baresip]) -> MakePhone:  # noqa: F811
    """``phone(extension, answermode="manual", server=None)``: a baresip phone of a
    provisioned user, registered to ``server`` (by default this test's ``server``)."""

    def make(extension: str, answermode: str = "manual",
             server: RunningServer | None = None) -> Baresip:
        to = server if server is not None else request.getfixturevalue("server")
        started = make_baresip(extension, PASSWORDS[extension], to.sip,
                               answermode=answermode)
        started.wait_registered()
        return started

    return make


@pytest.fixture
def jane(phone: MakePhone) -> Baresip:
    """210's phone: it places calls, and is answered by hand."""
    return phone("210")


@pytest.fixture
def john(phone: MakePhone) -> Baresip:
    """200's phone: it answers by itself."""
    return phone("200", "auto")


@pytest.fixture
async def api(tmp_path: Path, database: str) -> AsyncIterator[Api]:
    """The call-control API on a fresh database, through httpx's ASGI transport."""
    async with running_api(tmp_path, database) as running:
        yield running
