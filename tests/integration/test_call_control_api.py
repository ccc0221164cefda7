"""The call-control endpoint through httpx's ASGI transport, on a real database.

The SIP side is not running here: commands the service issues are collected instead, and
"registered" users are a set. The same flows run with real phones in tests/e2e.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from hookswitch.api.app import Services, create_app
from hookswitch.api.idempotency import IdempotencyStore
from hookswitch.api.ratelimit import RateLimiter
from hookswitch.calls.commands import CallEnded, Hangup, RingUser
from hookswitch.calls.control import CallControl
from hookswitch.calls.ids import CallId, LegId, UserId
from hookswitch.calls.leg import HangupReason
from hookswitch.calls.switch import Effect, Switch
from hookswitch.config import load_provisioning
from hookswitch.directory.models import ApiTokenRow
from hookswitch.directory.provisioning import apply_provisioning, load_directory, user_id_for
from hookswitch.directory.tokens import create_token, revoke_token
from hookswitch.store.db import make_engine, migrate, session_factory
from hookswitch.store.queries import stored_leg
from hookswitch.store.recorder import Recorder
from tests.support.server import OTHER_TENANT, TENANT, provisioning_toml

URL = "/v3/call_control/"


@dataclass
class Api:
    client: httpx.AsyncClient
    registered: set[UserId]
    commands: list[Effect]
    switch: Switch
    recorder: Recorder
    sessions: object
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


@pytest.fixture
async def api(tmp_path: Path, database: str) -> AsyncIterator[Api]:
    path = tmp_path / "p.toml"
    path.write_text(provisioning_toml(http="127.0.0.1:1", sip="127.0.0.1:2", database=database,
                                      trunk_port=5080, ring_timeout=60))
    provisioning = load_provisioning(path)
    engine = make_engine(database)
    await migrate(engine)
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await apply_provisioning(session, provisioning)
    async with sessions() as session:
        directory = await load_directory(session, TENANT)
    registered = {UserId(user_id_for(TENANT, e)) for e in ("200", "210")}
    registered.add(UserId(user_id_for(OTHER_TENANT, "300")))
    ids = itertools.count(1)
    switch = Switch(directory, registered.__contains__, lambda: LegId(f"leg-{next(ids):04d}"))
    recorder = Recorder(sessions)
    recorder.start()
    commands: list[Effect] = []
    clock = itertools.count(1_000_000)

    def apply(effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, (RingUser, Hangup)):
                commands.append(effect)
            else:
                recorder.put(effect)  # type: ignore[arg-type]

    control = CallControl(switch, apply, partial(stored_leg, sessions), lambda: next(clock),
                          lambda: CallId(f"call-{next(ids):04d}"))
    app = create_app(Services(sessions=sessions, call_control=control,
                              rate_limiter=RateLimiter(10, 20),
                              idempotency=IdempotencyStore(sessions), is_ready=lambda: True))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hookswitch.test") as client:
        yield Api(client, registered, commands, switch, recorder, sessions)
    await recorder.drain()
    await engine.dispose()


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["code"] == code
    assert problem["title"] and problem["detail"] and problem["type"].endswith(code)
    return problem


async def test_click_to_dial_answers_202_with_the_leg_and_rings_the_user(api: Api) -> None:
    response = await api.post(c2d())
    assert response.status_code == 202
    body = response.json()
    assert body == {"call_leg_id": "leg-0002", "call_id": "call-0001", "state": "RINGING"}
    [ring] = api.commands
    assert isinstance(ring, RingUser)
    assert (ring.display_name, ring.shown_number) == ("(pick up to call)", "200")
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
        assert name in response.headers


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", "malformed-body"),
        (b"[1, 2]", "malformed-body"),
        (b'"just a string"', "malformed-body"),
        (b'{"command": "transfer", "user": {}, "payload": {}}', "malformed-body"),
        (b'{"user": {}, "payload": {}}', "malformed-body"),
        (b'{"command": "hangup", "user": "{\'a\': __import__(\'os\')}", "payload": {}}',
         "malformed-body"),
    ],
)
async def test_400_for_bodies_that_are_not_a_command(api: Api, raw: bytes, code: str) -> None:
    assert_problem(await api.post(None, raw=raw), 400, code)
    assert api.commands == []


async def test_422_lists_every_field_problem(api: Api) -> None:
    problem = assert_problem(
        await api.post({"command": "click-to-dial", "user": {"user_extension": "210"},
                        "payload": {}}), 422, "invalid-fields")
    fields = {error["field"] for error in problem["errors"]}
    assert fields == {"user.tenant_id", "payload.destination"}


@pytest.mark.parametrize("destination", ["abc", "+32", "0470123456", "999"])
async def test_422_for_a_destination_that_is_neither_extension_nor_e164(
    api: Api, destination: str
) -> None:
    problem = assert_problem(await api.post(c2d(destination)), 422, "invalid-destination")
    assert problem["errors"][0]["field"] == "payload.destination"
    assert api.commands == []


async def test_422_for_a_number_when_the_tenant_has_no_trunk(api: Api) -> None:
    problem = assert_problem(
        await api.post(c2d("+32470123456", "300", OTHER_TENANT), token="tok-other"),
        422, "invalid-destination")
    assert "trunk" in problem["detail"]


async def test_409_when_the_user_has_no_registered_phone(api: Api) -> None:
    api.registered.discard(UserId(user_id_for(TENANT, "210")))
    assert_problem(await api.post(c2d()), 409, "no-registered-device")
    assert api.commands == []


@pytest.mark.parametrize("token", [None, "nope", ""])
async def test_401_without_a_valid_token(api: Api, token: str | None) -> None:
    response = await api.post(c2d(), token=token)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_401_for_revoked_and_expired_cli_tokens(api: Api) -> None:
    async with api.sessions.begin() as session:  # type: ignore[attr-defined]
        _, revoked = await create_token(session, TENANT, "210", None)
        expired_id, expired = await create_token(session, TENANT, "210", timedelta(hours=1))
        _, fresh = await create_token(session, TENANT, "210", timedelta(days=1))
    assert (await api.post(c2d(), token=revoked)).status_code == 202
    async with api.sessions.begin() as session:  # type: ignore[attr-defined]
        assert await revoke_token(session, revoked)
        await session.execute(update(ApiTokenRow).where(ApiTokenRow.id == expired_id)
                              .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert_problem(await api.post(c2d(), token=revoked), 401, "unauthorized")
    assert_problem(await api.post(c2d(), token=expired), 401, "unauthorized")
    assert (await api.post(c2d(), token=fresh)).status_code == 202


async def test_403_for_another_users_extension_and_another_tenants_token(api: Api) -> None:
    assert_problem(await api.post(c2d(extension="200")), 403, "not-owner")
    assert_problem(await api.post(c2d(), token="tok-other"), 403, "not-owner")
    assert_problem(await api.post(c2d(extension="300", tenant=OTHER_TENANT)), 403, "not-owner")
    assert api.commands == []


async def test_hangup_rules_404_unknown_403_not_a_party_and_other_tenant_like_unknown(
    api: Api,
) -> None:
    leg = (await api.post(c2d("+32470123456"))).json()["call_leg_id"]
    other_leg = (await api.post(c2d("301", "300", OTHER_TENANT), token="tok-other"))
    assert other_leg.status_code == 422  # 301 does not exist; make a real one instead:
    other = await api.post(c2d("300", "300", OTHER_TENANT), token="tok-other")
    assert other.status_code == 422  # a user cannot call themselves
    assert_problem(await api.post(hangup("00000000-0000-4000-8000-000000000000")), 404,
                   "leg-not-found")
    # John owns 200 but is no party to Jane's call to an outside number.
    assert_problem(await api.post(hangup(leg, "200"), token="tok-john"), 403, "not-participant")
    # Jane cannot hang up with John's extension either.
    assert_problem(await api.post(hangup(leg, "200")), 403, "not-owner")
    # Another tenant's user asking for Jane's leg gets exactly the unknown-leg answer.
    unknown = await api.post(hangup("00000000-0000-4000-8000-000000000000", "300",
                                    OTHER_TENANT), token="tok-other")
    foreign = await api.post(hangup(leg, "300", OTHER_TENANT), token="tok-other")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["title"] == unknown.json()["title"]


async def test_either_party_of_an_internal_click_to_dial_may_hang_up(api: Api) -> None:
    started = (await api.post(c2d("200"))).json()
    call = api.switch.calls[started["call_id"]]
    from hookswitch.calls.commands import UserPickedUp

    api.switch.handle(UserPickedUp(call_id=call.id, at_us=2_000_000))
    john_leg = next(leg.id for leg in call.legs if leg.extension == "200")
    response = await api.post(hangup(john_leg, "200"), token="tok-john")
    assert response.status_code == 200
    assert isinstance(api.commands[-1], Hangup)


async def test_hangup_of_an_ended_leg_answers_200_with_its_final_state(api: Api) -> None:
    started = (await api.post(c2d())).json()
    api.end(started["call_id"], HangupReason.NO_ANSWER)
    await api.recorder.drain()
    api.recorder.start()
    response = await api.post(hangup(started["call_leg_id"]))
    assert response.status_code == 200
    assert response.json() == {"call_leg_id": started["call_leg_id"],
                               "call_id": started["call_id"], "state": "HANGUP",
                               "reason": "no-answer"}


async def test_429_over_the_call_control_limit_with_retry_after(api: Api) -> None:
    answers = [await api.post(hangup("00000000-0000-4000-8000-000000000000")) for _ in range(21)]
    assert [a.status_code for a in answers[:20]] == [404] * 20
    limited = assert_problem(answers[20], 429, "rate-limited")
    assert limited
    assert int(answers[20].headers["Retry-After"]) >= 1
    assert answers[20].headers["RateLimit-Remaining"] == "0"
    assert answers[0].headers["RateLimit-Limit"] == "20"
    # The budget is per user: John is not limited by Jane's requests.
    assert (await api.post(c2d(extension="200", destination="210"),
                           token="tok-john")).status_code == 202


async def test_idempotency_key_replays_the_first_answer_and_rings_once(api: Api) -> None:
    first = await api.post(c2d(), **{"Idempotency-Key": "k-1"})
    second = await api.post(c2d(), **{"Idempotency-Key": "k-1"})
    other_user = await api.post(c2d(extension="200", destination="210"), token="tok-john",
                                **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == other_user.status_code == 202
    assert first.json() == second.json() != other_user.json()
    assert len([c for c in api.commands if isinstance(c, RingUser)]) == 2


WEIRD_BODIES = [
    {"command": "click-to-dial", "user": None, "payload": None},
    {"command": "click-to-dial", "user": [], "payload": "x"},
    {"command": "click-to-dial", "user": {"tenant_id": 5, "user_extension": 210},
     "payload": {"destination": 200}},
    {"command": "hangup", "user": {"tenant_id": "x" * 10_000, "user_extension": "210"},
     "payload": {"call_leg_id": {"nested": [1, 2]}}},
    {"command": ["hangup"], "user": {}, "payload": {}},
    {"command": "click-to-dial", "user": "{'tenant_id': 'a', 'user_extension': '210',}",
     "payload": "{'destination': '\\u0000'}"},
]


@pytest.mark.parametrize("body", WEIRD_BODIES)
async def test_nothing_a_client_sends_produces_a_500(api: Api, body: object) -> None:
    response = await api.post(body)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_openapi_describes_both_commands_and_every_answer(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    operation = spec["paths"]["/v3/call_control/"]["post"]
    assert set(operation["responses"]) >= {"200", "202", "400", "401", "403", "404", "409",
                                           "422", "429"}
    schemas = spec["components"]["schemas"]
    assert {"ClickToDialRequest", "HangupRequest", "Problem"} <= set(schemas)
    assert (await api.client.get("/docs")).status_code == 200
