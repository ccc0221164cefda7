"""The portal's Calls and History pages over HTTP (no JavaScript, and as htmx asks), on a
real database, with the SIP side faked (tests/support/api.py). The same pages in a real
browser with phones and the live stream: tests/e2e/test_web_app.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harness.server import TENANT
from hookswitch.calls.commands import RingUser
from hookswitch.calls.ids import CallId, UserId
from hookswitch.calls.leg import HangupReason
from hookswitch.directory.provisioning import user_id_for
from hookswitch.directory.sessions import session_for
from hookswitch.events.outbox import OutboxEvent
from hookswitch.web import calls as web_calls
from tests.support.api import Api, c2d, running_api
from tests.support.integrations import PortalUser, csrf_of

JANE = UserId(user_id_for(TENANT, "210"))
HTMX = {"HX-Request": "true"}


@pytest.fixture
async def app(tmp_path: Path, database: str) -> AsyncIterator[Api]:
    async with running_api(tmp_path, database, rate_limit=(1, 3)) as api:
        yield api


async def logged_in(app: Api) -> str:
    """Jane logs in; her Calls page's CSRF token."""
    assert await PortalUser(app.client).log_in() == "/portal/"
    page = await app.client.get("/portal/")
    assert page.status_code == 200
    return csrf_of(page.text)


def rings(app: Api) -> list[RingUser]:
    return [c for c in app.commands if isinstance(c, RingUser)]


async def test_the_calls_page_needs_a_login_and_is_the_page_after_it(app: Api) -> None:
    answer = await app.client.get("/portal/")
    assert (answer.status_code, answer.headers["location"]) == (
        303, "/portal/login?next=%2Fportal%2F")
    # No session, no stream: a 204 stops the browser's EventSource reconnecting.
    assert (await app.client.get("/portal/calls/stream")).status_code == 204
    csrf = await logged_in(app)
    page = (await app.client.get("/portal/")).text
    for text in ('<label for="destination">Destination</label>', ">Call</button>",
                 "Not registered", "No call in progress.", 'aria-current="page">Calls',
                 'role="status"', "/portal/static/htmx-2.0.4.min.js"):
        assert text in page
    assert csrf
    history = await app.client.get("/portal/history")
    assert "No ended call yet." in history.text
    assert (await app.client.get("/portal/integrations")).status_code == 200


async def test_call_without_javascript_then_with_htmx_and_the_row_shows_it(app: Api) -> None:
    csrf = await logged_in(app)
    answer = await app.client.post("/portal/calls/dial",
                                   data={"destination": "200", "csrf_token": csrf})
    assert (answer.status_code, answer.headers["location"]) == (303, "/portal/")
    assert [ring.call_id for ring in rings(app)] == [app.switch.live_legs_of(JANE)[0].call_id]
    page = (await app.client.get("/portal/")).text
    assert "John Doe (200)" in page and ">Ringing<" in page and "Outgoing" in page
    assert re.search(r'data-changed-us="\d+"', page)
    assert ">Hang up</button>" in page and ">Hold</button>" not in page  # not answered yet

    fragment = await app.client.post("/portal/calls/dial", headers=HTMX,
                                     data={"destination": "220", "csrf_token": csrf})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert fragment.text.count('class="call"') == 2
    assert 'hx-swap-oob="innerHTML"' in fragment.text  # the status region, announced


async def test_refusals_are_messages_in_the_page_not_error_pages(app: Api) -> None:
    csrf = await logged_in(app)
    invalid = await app.client.post("/portal/calls/dial",
                                    data={"destination": "not a number", "csrf_token": csrf})
    assert invalid.status_code == 422 and 'id="destination"' in invalid.text
    assert 'class="error"' in invalid.text
    app.registered.discard(JANE)
    no_phone = await app.client.post("/portal/calls/dial", headers=HTMX,
                                     data={"destination": "200", "csrf_token": csrf})
    assert no_phone.status_code == 200 and "registered" in no_phone.text
    assert 'class="error"' in no_phone.text
    no_phone_page = await app.client.post("/portal/calls/dial",
                                          data={"destination": "200", "csrf_token": csrf})
    assert no_phone_page.status_code == 409 and 'class="error"' in no_phone_page.text
    # The same call-control budget as the API (3 here): the fourth request is refused.
    spent = await app.client.post("/portal/calls/dial",
                                  data={"destination": "200", "csrf_token": csrf})
    assert spent.status_code == 429 and "Too many requests" in spent.text
    assert rings(app) == []


async def test_a_form_without_the_csrf_token_is_refused(app: Api) -> None:
    await logged_in(app)
    for path in ("/portal/calls/dial", "/portal/calls/some-leg/hangup"):
        for data in ({"destination": "200"}, {"destination": "200", "csrf_token": "x"}):
            answer = await app.client.post(path, data=data)
            assert answer.status_code == 403, path
            assert "This form did not come from this site." in answer.text
    assert rings(app) == []
    # Nor can another site's page post for a browser with no session.
    await app.client.post("/portal/logout", data={"csrf_token": (await logged_in(app))})
    answer = await app.client.post("/portal/calls/dial", data={"destination": "200"})
    assert answer.headers["location"].startswith("/portal/login")


async def test_commands_on_another_users_leg_are_refused_in_the_page(app: Api) -> None:
    john = (await app.post(c2d("210", extension="200"), token="tok-john")).json()
    csrf = await logged_in(app)
    answer = await app.client.post(f"/portal/calls/{john['call_leg_id']}/hold",
                                   data={"csrf_token": csrf})
    assert answer.status_code == 403 and 'class="error"' in answer.text
    assert "another user" in answer.text
    assert "John" not in answer.text.split('id="live"')[1]  # his call is not listed


async def test_history_lists_ended_calls_a_page_at_a_time_with_a_call_button(
    app: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_calls, "HISTORY_PAGE", 2)
    csrf = await logged_in(app)
    for destination in ("200", "220", "+32470123456"):
        await app.client.post("/portal/calls/dial",
                              data={"destination": destination, "csrf_token": csrf})
    for leg in reversed(app.switch.live_legs_of(JANE)):  # the first call ends first
        app.end(CallId(leg.call_id), HangupReason.NO_ANSWER)
    await app.recorder.write(_nothing)  # type: ignore[arg-type]
    first = (await app.client.get("/portal/history")).text
    assert first.count("<tr data-leg=") == 2 and "John Doe" not in first
    assert 'name="destination" value="+32470123456"' in first and ">Call</button>" in first
    older = re.search(r'href="(/portal/history\?cursor=[^"]+)"', first)
    assert older is not None
    second = (await app.client.get(older.group(1))).text
    assert second.count("<tr data-leg=") == 1 and "John Doe (200)" in second
    assert "No answer" in second and "Newest calls" in second
    bad = await app.client.get("/portal/history", params={"cursor": "nonsense!"})
    assert bad.status_code == 400


async def _nothing(_: object) -> None:
    return None


async def test_the_stream_sends_the_calls_on_connect_and_after_events_until_logout(
    app: Api
) -> None:
    csrf = await logged_in(app)
    cookie = app.client.cookies["hs_session"]
    services = app.app.state.services
    async with services.sessions() as db:
        session = await session_for(db, cookie)
    assert session is not None
    listener = services.broadcaster.open(JANE, None)
    frames = web_calls._frames(services, session, cookie, listener)
    assert await anext(frames) == "retry: 2000\n\n"
    first = await anext(frames)
    assert first.startswith("event: calls\ndata: ") and first.endswith("\n\n")
    assert "No call in progress." in first and "hx-swap-oob" not in first  # page has it
    await app.client.post("/portal/calls/dial", data={"destination": "200",
                                                      "csrf_token": csrf})
    leg = app.switch.live_legs_of(JANE)[0]
    services.broadcaster.publish([OutboxEvent(1, "msg_1", JANE, leg.id, "{}")])
    after = await anext(frames)
    assert "Ringing" in after and f'data-leg="{leg.id}"' in after
    assert 'id="calls-status" hx-swap-oob="innerHTML"' in after  # announced
    # Logged out: the next event ends the stream instead of showing the calls.
    await app.client.post("/portal/logout", data={"csrf_token": csrf})
    services.broadcaster.publish([OutboxEvent(2, "msg_2", JANE, leg.id, "{}")])
    with pytest.raises(StopAsyncIteration):
        await anext(frames)
    services.broadcaster.close(listener)
