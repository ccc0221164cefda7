"""``GET /v3/calls`` and ``GET /v3/calls/history`` over HTTP, on a real database.

Calls are started with the call-control API and ended as SIP would report it (the switch
is handed ``CallEnded``); the one writer records them (tests/support/api.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

import httpx
import pytest
from sqlalchemy import select

from harness.server import OTHER_TENANT, TENANT
from hookswitch.calls.commands import (
    CallAnswered,
    CallEnded,
    CallOffered,
    HoldChanged,
    UserPickedUp,
)
from hookswitch.calls.ids import CallId, TenantId
from hookswitch.calls.leg import HangupReason, LegChange
from hookswitch.calls.switch import Effect, LegOpened
from hookswitch.directory.provisioning import user_id_for
from hookswitch.events.models import EventRow, WebhookRow
from tests.support.api import Api, assert_problem, c2d

LIVE = "/v3/calls"
HISTORY = "/v3/calls/history"
OUTSIDE = "+32470123456"  # through the trunk: only the user's own leg


async def get(api: Api, path: str, token: str | None = "tok-jane",
              **params: str | int) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await api.client.get(path, params=params, headers=headers)


async def signal(api: Api, *signals: CallOffered | UserPickedUp | CallAnswered | HoldChanged
                 | CallEnded) -> None:
    """Hand the switch what SIP would report, and wait until the one writer has committed
    its leg records."""
    for sig in signals:
        _record(api, api.switch.handle(sig))
    await _written(api)


def _record(api: Api, effects: Iterable[Effect]) -> None:
    for effect in effects:
        if isinstance(effect, LegOpened | LegChange):
            api.recorder.put(effect)


async def _written(api: Api) -> None:
    """The writer takes records in order: once a write put after them is committed, so
    are they."""

    async def nothing(_: object) -> None:
        return None

    await api.recorder.write(nothing)  # type: ignore[arg-type]


async def ended_call(api: Api, ended_us: int, destination: str = OUTSIDE) -> str:
    """A click-to-dial by Jane that ended unanswered at ``ended_us``: her leg's id."""
    started = (await api.post(c2d(destination))).json()
    await signal(api, CallEnded(call_id=started["call_id"], reason=HangupReason.NO_ANSWER,
                                at_us=ended_us))
    return str(started["call_leg_id"])


async def history_ids(api: Api, token: str = "tok-jane") -> list[str]:
    body = (await get(api, HISTORY, token)).json()
    assert body["next_cursor"] is None
    return [call["id"] for call in body["calls"]]


# --- live calls ---------------------------------------------------------------------------


async def test_a_ringing_click_to_dial_is_listed_with_its_parties_until_it_ends(
    api: Api,
) -> None:
    assert (await get(api, LIVE)).json() == {"calls": []}
    started = (await api.post(c2d("200"))).json()
    leg = api.switch.live_leg(started["call_leg_id"])
    assert leg is not None

    response = await get(api, LIVE)
    assert response.status_code == 200
    assert response.json() == {"calls": [{
        "call_leg_id": started["call_leg_id"], "call_id": started["call_id"],
        "state": "RINGING", "direction": "out",
        "caller_number": "210", "caller_name": "Jane Doe",
        "callee_number": "200", "callee_name": "John Doe",
        "since": str(leg.created_us),
    }]}
    # John has no leg until Jane picks up; then his phone rings, and both are listed.
    assert (await get(api, LIVE, "tok-john")).json() == {"calls": []}
    await signal(api, UserPickedUp(call_id=CallId(started["call_id"]), at_us=leg.created_us + 1))
    [johns] = (await get(api, LIVE, "tok-john")).json()["calls"]
    assert (johns["call_id"], johns["state"], johns["direction"]) == (
        started["call_id"], "RINGING", "in")
    await signal(api, CallAnswered(call_id=CallId(started["call_id"]), at_us=leg.created_us + 2))
    assert [c["state"] for c in (await get(api, LIVE)).json()["calls"]] == ["ACTIVE"]

    await signal(api, CallEnded(call_id=CallId(started["call_id"]),
                                reason=HangupReason.COMPLETED, at_us=leg.created_us + 3))
    assert (await get(api, LIVE)).json() == {"calls": []}
    assert (await get(api, LIVE, "tok-john")).json() == {"calls": []}
    assert await history_ids(api) == [started["call_leg_id"]]


async def test_live_calls_are_the_users_own_newest_first(api: Api) -> None:
    first = (await api.post(c2d(OUTSIDE))).json()["call_leg_id"]
    second = (await api.post(c2d("200"))).json()["call_leg_id"]
    named = await get(api, LIVE, user_extension="210")
    assert [c["call_leg_id"] for c in named.json()["calls"]] == [second, first]
    assert (await get(api, LIVE)).json() == named.json()
    assert (await get(api, LIVE, "tok-john")).json() == {"calls": []}
    assert (await get(api, LIVE, "tok-other")).json() == {"calls": []}
    # Live legs are not history yet.
    assert await history_ids(api) == []


# --- who may read -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LIVE, HISTORY])
@pytest.mark.parametrize(("token", "extension"), [("tok-jane", "200"), ("tok-other", "210"),
                                                  ("tok-john", "210")])
async def test_403_for_another_users_extension(api: Api, path: str, token: str,
                                               extension: str) -> None:
    await ended_call(api, 5_000_000)
    problem = assert_problem(await get(api, path, token, user_extension=extension),
                             403, "not-owner")
    assert f"user_extension {extension!r} is another user's" in problem["detail"]


@pytest.mark.parametrize("path", [LIVE, HISTORY])
@pytest.mark.parametrize("token", [None, "nope"])
async def test_401_without_a_valid_token(api: Api, path: str, token: str | None) -> None:
    response = await get(api, path, token)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- history ------------------------------------------------------------------------------


async def test_history_pages_newest_first_with_no_leg_twice_or_missed(api: Api) -> None:
    # Five ended calls; two end in the same microsecond, so the id breaks the tie.
    ends = [5_000_000, 7_000_000, 6_000_000, 7_000_000, 4_000_000]
    legs = [await ended_call(api, at) for at in ends]
    newest_first = [leg for _, leg in sorted(zip(ends, legs, strict=True), reverse=True)]

    pages: list[list[str]] = []
    cursor: str | None = None
    for _ in range(len(legs) + 1):  # a cursor that never ends fails, not hangs, the test
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await get(api, HISTORY, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([call["id"] for call in body["calls"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        if len(pages) == 1:
            # A call that ends meanwhile is newer than every page: it shifts nothing.
            await ended_call(api, 9_000_000)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [leg for page in pages for leg in page] == newest_first
    assert len(await history_ids(api)) == 6  # the default limit (50) takes them all


async def test_a_history_entry_is_the_legs_summary_event(api: Api) -> None:
    """The same object the one writer sends an integration after the HANGUP."""
    jane = user_id_for(TENANT, "210")
    async with api.sessions.begin() as session:
        session.add(WebhookRow(id="wh-summaries", kind="events", url="http://127.0.0.1:1/",
                               headers={}))
    api.recorder.subscriptions.by_user[jane] = ["wh-summaries"]
    started = (await api.post(c2d("200"))).json()
    call_id = CallId(started["call_id"])
    await signal(api, UserPickedUp(call_id=call_id, at_us=3_000_000),
                 CallAnswered(call_id=call_id, at_us=3_500_000),
                 HoldChanged(call_id=call_id, held=True, at_us=10_000_000),
                 HoldChanged(call_id=call_id, held=False, at_us=30_000_000),
                 HoldChanged(call_id=call_id, held=True, at_us=60_000_000),
                 CallEnded(call_id=call_id, reason=HangupReason.COMPLETED, at_us=65_900_000))
    unanswered = await ended_call(api, 70_000_000)

    calls = (await get(api, HISTORY)).json()["calls"]
    async with api.sessions() as session:
        summaries = {row.leg_id: json.loads(row.payload) for row in (await session.scalars(
            select(EventRow).where(EventRow.kind == "summary"))).all()}
    assert calls == [summaries[unanswered], summaries[started["call_leg_id"]]]
    answered = calls[1]
    assert (answered["answered_at"], answered["ended_at"], answered["duration"],
            answered["held_duration"], answered["sequence"], answered["reason"],
            answered["callee_name"]) == (
        "3500000", "65900000", "62", "25", "7", "completed", "John Doe")
    assert calls[0]["answered_at"] == "" and calls[0]["reason"] == "no-answer"


async def test_history_never_shows_other_users_or_other_tenants_legs(api: Api) -> None:
    janes = await ended_call(api, 5_000_000, destination="200")  # John's phone never rang
    started = (await api.post(c2d("200"))).json()
    call_id = CallId(started["call_id"])
    await signal(api, UserPickedUp(call_id=call_id, at_us=6_000_000),
                 CallEnded(call_id=call_id, reason=HangupReason.CANCELLED, at_us=6_500_000))
    [johns] = (await get(api, HISTORY, "tok-john")).json()["calls"]
    # A call from outside to the other tenant's user, through a trunk.
    await signal(api, CallOffered(call_id=CallId("call-outside"), tenant_id=TenantId(OTHER_TENANT),
                                  dialled="300", at_us=7_000_000, from_number="+3212345678"),
                 CallEnded(call_id=CallId("call-outside"), reason=HangupReason.NO_ANSWER,
                           at_us=8_000_000))

    assert await history_ids(api) == [started["call_leg_id"], janes]
    assert (johns["call_id"], johns["user_extension"], johns["direction"]) == (
        started["call_id"], "200", "in")
    assert await history_ids(api, "tok-john") == [johns["id"]]
    [others] = (await get(api, HISTORY, "tok-other")).json()["calls"]
    assert (others["tenant_id"], others["call_id"], others["caller_number"]) == (
        OTHER_TENANT, "call-outside", "+3212345678")


@pytest.mark.parametrize("limit", ["0", "501", "-1", "many"])
async def test_422_for_a_limit_out_of_range(api: Api, limit: str) -> None:
    problem = assert_problem(await get(api, HISTORY, limit=limit), 422, "invalid-fields")
    assert [error["field"] for error in problem["errors"]] == ["query.limit"]


@pytest.mark.parametrize(("limit", "listed"), [("1", 1), ("500", 2)])
async def test_limits_at_the_bounds_are_accepted(api: Api, limit: str, listed: int) -> None:
    await ended_call(api, 5_000_000)
    await ended_call(api, 6_000_000)
    body = (await get(api, HISTORY, limit=limit)).json()
    assert len(body["calls"]) == listed
    assert (body["next_cursor"] is None) == (listed == 2)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "", "garbage!", "not a cursor", "\x00", "A", "x" * 5000, "ZZZZ",
    _b64("5000000"), _b64(":leg-0002"), _b64("5000000:"), _b64("-1:leg-0002"),
    _b64("1" * 30 + ":leg-0002"), _b64("5000000:leg\x00"), _b64("5000000:" + "a" * 40),
    "é", base64.urlsafe_b64encode(b"\xff\xfe:\x00").decode(),
])
async def test_400_for_a_cursor_the_api_did_not_give(api: Api, cursor: str) -> None:
    await ended_call(api, 5_000_000)
    problem = assert_problem(await get(api, HISTORY, cursor=cursor), 400, "invalid-cursor")
    assert "next_cursor" in problem["detail"]


async def test_openapi_documents_both_reads_and_their_problems(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    live, history = spec["paths"][LIVE]["get"], spec["paths"][HISTORY]["get"]
    assert set(live["responses"]) >= {"200", "401", "403", "422"}
    assert set(history["responses"]) >= {"200", "400", "401", "403", "422"}
    schemas = spec["components"]["schemas"]
    assert {"LiveCalls", "LiveCall", "CallHistory", "CallSummary"} <= set(schemas)
    assert "application/problem+json" in history["responses"]["400"]["content"]
