"""The call-control endpoint through httpx's ASGI transport, on a real database.

The SIP side is not running here: commands the service issues are collected instead, and
"registered" users are a set (tests/support/api.py). The same flows run with real phones
in tests/e2e.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from harness.server import OTHER_TENANT, TENANT
from hookswitch.calls.commands import Hangup, RingUser
from hookswitch.calls.ids import UserId
from hookswitch.calls.leg import HangupReason
from hookswitch.directory.models import ApiTokenRow
from hookswitch.directory.provisioning import user_id_for
from hookswitch.directory.tokens import create_token, revoke_token
from tests.support.api import Api, assert_problem, c2d, hangup


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
        (b'{"command": "park", "user": {}, "payload": {}}', "malformed-body"),
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
