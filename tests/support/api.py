"""The call-control API through httpx's ASGI transport, on a real database.

The SIP side is not running here: commands the service issues are collected instead, and
"registered" users are a set. Shared by tests/integration and tests/hostile (the ``api``
fixture in tests/conftest.py) and by the schemathesis run, which serves ``Api.app``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from harness.server import OTHER_TENANT, TENANT, provisioning_toml
from hookswitch.calls.commands import CallEnded, Hangup, RingUser
from hookswitch.calls.ids import CallId, LegId, UserId
from hookswitch.calls.leg import HangupReason
from hookswitch.calls.switch import Effect, Switch
from hookswitch.config import load_provisioning
from hookswitch.directory.provisioning import load_directory, user_id_for
from hookswitch.events.recorder import Recorder
from hookswitch.server import apply_file, build
from hookswitch.store.db import make_engine, migrate, session_factory
from hookswitch.store.writes import DirectWriter

URL = "/v3/call_control/"


@dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI
    registered: set[UserId]
    commands: list[Effect]
    switch: Switch
    recorder: Recorder
    sessions: Any
    clock: itertools.count = field(default_factory=lambda: itertools.count(1_000_000))

    async def post(self, body: object, token: str | None = "tok-jane", raw: bytes | None = None,
                   **headers: str) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = raw if raw is not None else json.dumps(body).encode()
        return await self.client.post(URL, content=content, headers={
            "Content-Type": "application/json", **headers})

    def end(self, call_id: str, reason: HangupReason) -> None:
        """What SIP would report: the call ended."""
        effects = self.switch.handle(CallEnded(call_id=CallId(call_id), reason=reason,
                                               at_us=next(self.clock)))
        for effect in effects:
            self.recorder.put(effect)  # type: ignore[arg-type]


def c2d(destination: str = "200", extension: str = "210", tenant: str = TENANT) -> dict:
    return {"command": "click-to-dial", "user": {"tenant_id": tenant,
            "user_extension": extension}, "payload": {"destination": destination}}


def hangup(leg: str, extension: str = "210", tenant: str = TENANT) -> dict:
    return {"command": "hangup", "user": {"tenant_id": tenant, "user_extension": extension},
            "payload": {"call_leg_id": leg}}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["code"] == code
    assert problem["title"] and problem["detail"] and problem["type"].endswith(code)
    return problem


@asynccontextmanager
async def running_api(
    folder: Path, database: str, *, rate_limit: tuple[int, int] = (10, 20),
    server_extra: str = "", extra: str = "",
) -> AsyncIterator[Api]:
    """The app on a migrated, provisioned database, with a client; stopped on exit. The
    provisioning file is written once per folder (a test may edit it between two apps);
    ``extra`` (``[[integrations]]``) replaces the previous app's."""
    path = folder / "p.toml"
    text = provisioning_toml(http="127.0.0.1:1", sip="127.0.0.1:2", database=database,
                             trunk_port=5080, ring_timeout=60, server_extra=server_extra)
    if not path.exists():
        path.write_text(text)  # a test may have edited it since: keep its tenants
    path.write_text(path.read_text().split("\n[[integrations]]")[0] + extra)
    provisioning = load_provisioning(path)
    engine = make_engine(database)
    await migrate(engine)
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await apply_file(session, provisioning)
    async with sessions() as session:
        directory = await load_directory(session, TENANT)
    registered = {UserId(user_id_for(TENANT, e)) for e in ("200", "210")}
    registered.add(UserId(user_id_for(OTHER_TENANT, "300")))
    ids = itertools.count(1)
    recorder = Recorder(sessions)
    recorder.start()
    commands: list[Effect] = []
    clock = itertools.count(1_000_000)

    def carry_out(effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, (RingUser, Hangup)):
                commands.append(effect)
            else:
                recorder.put(effect)  # type: ignore[arg-type]

    server = provisioning.server.model_copy(update={"rate_limit": rate_limit[0],
                                                    "rate_limit_burst": rate_limit[1]})
    core = build(server, directory, sessions, has_devices=registered.__contains__,
                 carry_out=carry_out, writer=DirectWriter(sessions), health=lambda: "ok",
                 new_leg_id=lambda: LegId(f"leg-{next(ids):04d}"),
                 new_call_id=lambda: CallId(f"call-{next(ids):04d}"),
                 clock=lambda: next(clock))
    switch, app = core.switch, core.app
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport,
                                     base_url="http://hookswitch.test") as client:
            yield Api(client, app, registered, commands, switch, recorder, sessions)
    finally:
        await recorder.drain()
        await engine.dispose()
