"""The example integrator (examples/integrator/) against the contract: the app through
httpx's ASGI transport, and hookswitch's OAuth and call-control endpoints played by a real
HTTP peer on a loopback port (harness.http_peer), which records what the app sent."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from standardwebhooks import Webhook

from examples.integrator import Settings, create_app
from examples.integrator.settings import DEMO_WEBHOOK_SECRET, parse_settings
from harness.http_peer import Answer, HttpPeer, PeerRequest

TENANT = "b11d749b-8eb7-4236-a068-3d94ba3860d6"
HOME = "http://127.0.0.1:9100/"
VALIDATION = {"X-Acme-Key": "k1"}
SECRET = "whsec_" + base64.b64encode(b"integrator-test-secret-32-bytes!").decode()


class FakeHookswitch:
    """hookswitch's side of the contract, as the integrator sees it: refresh tokens that
    rotate (each works once), revocation, and click-to-dial for the live access token."""

    def __init__(self) -> None:
        self.live_refresh = {"refresh-0"}
        self.live_access = {"access-0"}
        self.issued = 0
        self.call_answer: Answer | None = None  # what click-to-dial answers, when set

    def __call__(self, request: PeerRequest) -> Answer:
        if request.path == "/oauth/token":
            return self.token(request)
        if request.path == "/oauth/revoke":
            self.live_refresh.discard(request.form().get("token", ""))
            return Answer(200)
        if request.path == "/v3/call_control/":
            return self.click_to_dial(request)
        return Answer(404)

    def token(self, request: PeerRequest) -> Answer:
        if request.basic_auth() != ("acme-crm", "acme-secret"):
            return Answer(401, {"error": "invalid_client"})
        used = request.form().get("refresh_token", "")
        if used not in self.live_refresh:
            return Answer(400, {"error": "invalid_grant"})
        self.live_refresh.discard(used)
        self.issued += 1
        pair = {"access_token": f"access-{self.issued}",
                "refresh_token": f"refresh-{self.issued}"}
        self.live_access = {pair["access_token"]}
        self.live_refresh.add(pair["refresh_token"])
        return Answer(200, {**pair, "token_type": "Bearer", "expires_in": 3600,
                            "scope": "call-control call-events"})

    def click_to_dial(self, request: PeerRequest) -> Answer:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.live_access:
            return Answer(401, {"title": "Unauthorized", "detail": "invalid token"},
                          {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return self.call_answer or Answer(202, {"call_leg_id": "leg-6f0c", "call_id": "c-1",
                                                "state": "RINGING"})


@pytest.fixture
def fake() -> FakeHookswitch:
    return FakeHookswitch()


@pytest.fixture
def hookswitch(fake: FakeHookswitch) -> Iterator[HttpPeer]:
    with HttpPeer(fake) as peer:
        yield peer


@pytest.fixture
async def app(hookswitch: HttpPeer) -> AsyncIterator[httpx.AsyncClient]:
    """The integrator with the demo's settings, hookswitch being the peer above."""
    integrator = create_app(Settings(hookswitch_url=hookswitch.url, webhook_secret=SECRET))
    async with integrator.router.lifespan_context(integrator), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=integrator), base_url=HOME.rstrip("/")) as client:
        yield client


# -- steps -------------------------------------------------------------------------------

async def page(app: httpx.AsyncClient, query: str = "") -> str:
    answer = await app.get("/" + query)
    assert answer.status_code == 200
    return answer.text


async def post_form(app: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    """Submit one of the page's forms, with the CSRF token the page gave this browser."""
    csrf = app.cookies.get("integrator_csrf") or re.findall(
        r'name="csrf" value="([^"]+)"', await page(app))[0]
    return await app.post(path, data={"csrf": csrf, **fields})


async def connect(app: httpx.AsyncClient) -> str:
    """Click Connect; the confirmation key the portal URL carries."""
    answer = await post_form(app, "/connect")
    assert answer.status_code == 303
    return parse_qs(urlsplit(answer.headers["location"]).query)["confirmation_key"][0]


def activation(key: str, extension: str = "210", **changes: Any) -> dict[str, Any]:
    """The contract's activation body, with the peer's first token pair."""
    return {"tenant_id": TENANT, "user_extension": extension, "confirmation_key": key,
            "integration": "acme-crm", "access_token": "access-0", "token_type": "Bearer",
            "expires_in": 3600, "refresh_token": "refresh-0",
            "scope": "call-control call-events", **changes}


async def activate(app: httpx.AsyncClient, body: dict[str, Any],
                   headers: dict[str, str] = VALIDATION) -> httpx.Response:
    return await app.post("/telephony/activate", json=body, headers=headers)


async def connected(app: httpx.AsyncClient, extension: str = "210",
                    **changes: Any) -> None:
    """Connect, then hookswitch's activation call, as after Subscribe."""
    answer = await activate(app, activation(await connect(app), extension, **changes))
    assert answer.status_code == 200, answer.text


def user_path(extension: str = "210") -> str:
    return f"/connections/{TENANT}/{extension}"


def signed(event: dict[str, Any], webhook_id: str | None = None,
           secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """An event as hookswitch sends it: Standard Webhooks headers plus the static one."""
    body = json.dumps(event)
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(tz=UTC)
    signature = Webhook(secret).sign(webhook_id, now, body)
    return body.encode(), {"webhook-id": webhook_id, "webhook-timestamp": str(int(now.timestamp())),
                           "webhook-signature": signature, **VALIDATION,
                           "Content-Type": "application/json"}


def call_event(state: str, extension: str = "210", **more: str) -> dict[str, str]:
    return {"type": "call", "tenant_id": TENANT, "user_extension": extension,
            "direction": "out", "state": state, "caller_number": "210",
            "caller_name": "Jane Doe", "callee_number": "200", "callee_name": "John Doe",
            "id": "leg-6f0c", "call_id": "c-1", "sequence": "1",
            "timestamp": str(int(time.time() * 1_000_000)), **more}


# -- Connect and the way back ------------------------------------------------------------

async def test_connect_sends_the_browser_to_the_portal_with_a_fresh_key(
        app: httpx.AsyncClient, hookswitch: HttpPeer) -> None:
    first = await post_form(app, "/connect")
    second = await post_form(app, "/connect")
    for answer in (first, second):
        assert answer.status_code == 303
        target = urlsplit(answer.headers["location"])
        assert f"{target.scheme}://{target.netloc}" == hookswitch.url
        assert target.path == "/portal/activate/acme-crm"
        query = parse_qs(target.query)
        assert query["redirect_url"] == [HOME] and len(query["confirmation_key"][0]) >= 32
    assert first.headers["location"] != second.headers["location"]


async def test_connect_without_the_pages_form_token_is_refused(
        app: httpx.AsyncClient) -> None:
    await page(app)
    assert (await app.post("/connect", data={"csrf": "forged"})).status_code == 403


async def test_back_from_the_portal_the_page_names_the_user_or_the_error(
        app: httpx.AsyncClient) -> None:
    await connected(app)
    assert "Connected: extension 210 of tenant " + TENANT in await page(app)
    assert "Connected: extension" not in await page(app)  # said once
    assert "You chose Cancel on hookswitch" in await page(app, "?error=access_denied")
    assert "could not hand the connection" in await page(app, "?error=activation_failed")


async def test_activation_failed_after_this_app_answered_drops_the_delivered_tokens(
        app: httpx.AsyncClient) -> None:
    await connected(app)  # hookswitch timed out waiting for that answer, and revoked them
    shown = await page(app, "?error=activation_failed")
    assert "No user is connected yet." in shown and "activation_failed" in shown


# -- the Activation URL ------------------------------------------------------------------

async def test_activation_with_the_header_and_an_issued_key_connects_the_user(
        app: httpx.AsyncClient) -> None:
    key = await connect(app)
    answer = await activate(app, activation(key))
    assert answer.status_code == 200
    shown = await page(app)
    assert "<b>210</b>" in shown and TENANT in shown and "expires in 59 min" in shown
    assert "call-control call-events" in shown
    assert "access-0" not in shown and "refresh-0" not in shown  # tokens never shown


@pytest.mark.parametrize("headers", [{}, {"X-Acme-Key": "k2"}, {"X-Other": "k1"}])
async def test_activation_without_the_validation_header_is_refused_and_keeps_the_key(
        app: httpx.AsyncClient, headers: dict[str, str]) -> None:
    key = await connect(app)
    assert (await activate(app, activation(key), headers)).status_code == 401
    assert (await activate(app, activation(key))).status_code == 200


async def test_activation_with_an_unknown_or_reused_key_is_refused(
        app: httpx.AsyncClient) -> None:
    assert (await activate(app, activation("never-issued"))).status_code == 400
    key = await connect(app)
    assert (await activate(app, activation(key))).status_code == 200
    assert (await activate(app, activation(key, "200"))).status_code == 400
    assert "<b>200</b>" not in await page(app)


@pytest.mark.parametrize("changes", [{"access_token": None}, {"expires_in": "soon"},
                                     {"integration": "other-crm"}, {"token_type": "MAC"}])
async def test_activation_with_a_bad_body_is_refused_and_keeps_the_key(
        app: httpx.AsyncClient, changes: dict[str, Any]) -> None:
    key = await connect(app)
    body = {k: v for k, v in activation(key, **changes).items() if v is not None}
    assert (await activate(app, body)).status_code == 400
    assert (await activate(app, activation(key))).status_code == 200


# -- tokens: refresh with rotation, revoke -----------------------------------------------

async def test_refresh_now_rotates_both_tokens_with_the_client_credentials(
        app: httpx.AsyncClient, hookswitch: HttpPeer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await connected(app)
    for _ in range(2):
        assert (await post_form(app, user_path() + "/refresh")).status_code == 303
    first, second = hookswitch.received("/oauth/token")
    assert first.basic_auth() == ("acme-crm", "acme-secret")
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    assert first.form() == {"grant_type": "refresh_token", "refresh_token": "refresh-0"}
    assert second.form()["refresh_token"] == "refresh-1"  # the new one: the old is dead
    assert "refreshed 2 times" in await page(app)
    assert not re.search(r"(access|refresh)-\d", caplog.text)  # no token in the logs


async def test_refused_refresh_drops_the_connection_and_says_why(
        app: httpx.AsyncClient, fake: FakeHookswitch) -> None:
    await connected(app)
    fake.live_refresh.clear()  # hookswitch revoked the family (say, a reuse elsewhere)
    await post_form(app, user_path() + "/refresh")
    shown = await page(app)
    assert "No user is connected yet." in shown and "invalid_grant" in shown


async def test_disconnect_revokes_the_refresh_token_and_forgets_the_user(
        app: httpx.AsyncClient, hookswitch: HttpPeer) -> None:
    await connected(app)
    assert (await post_form(app, user_path() + "/disconnect")).status_code == 303
    [revoke] = hookswitch.received("/oauth/revoke")
    assert revoke.basic_auth() == ("acme-crm", "acme-secret")
    assert revoke.form() == {"token": "refresh-0", "token_type_hint": "refresh_token"}
    shown = await page(app)
    assert "No user is connected yet." in shown and "this app disconnected it" in shown


# -- click-to-dial -----------------------------------------------------------------------

async def test_call_sends_the_bearer_token_and_the_contract_body_and_shows_the_leg(
        app: httpx.AsyncClient, hookswitch: HttpPeer) -> None:
    await connected(app)
    assert (await post_form(app, user_path() + "/call", destination="200")).status_code == 303
    [call] = hookswitch.received("/v3/call_control/")
    assert call.headers["authorization"] == "Bearer access-0"
    assert call.headers["idempotency-key"]
    assert call.json() == {"command": "click-to-dial",
                           "user": {"tenant_id": TENANT, "user_extension": "210"},
                           "payload": {"destination": "200"}}
    assert "Call to 200: ringing your phone first (call_leg_id leg-6f0c)" in await page(app)
    assert not hookswitch.received("/oauth/token")  # an hour left: no refresh


async def test_call_refreshes_first_when_the_access_token_is_about_to_expire(
        app: httpx.AsyncClient, hookswitch: HttpPeer) -> None:
    await connected(app, expires_in=30)
    await post_form(app, user_path() + "/call", destination="+3228990200")
    assert [r.path for r in hookswitch.requests] == ["/oauth/token", "/v3/call_control/"]
    assert hookswitch.received("/v3/call_control/")[0].headers["authorization"] == \
        "Bearer access-1"


async def test_call_shows_the_problem_detail_of_a_refusal(
        app: httpx.AsyncClient, fake: FakeHookswitch) -> None:
    fake.call_answer = Answer(409, {"type": "about:blank", "title": "Conflict", "status": 409,
                                    "detail": "user 210 has no registered device"},
                              {"Content-Type": "application/problem+json"})
    await connected(app)
    await post_form(app, user_path() + "/call", destination="200")
    assert "Call to 200: 409 user 210 has no registered device" in await page(app)


async def test_call_while_hookswitch_is_down_says_so(app: httpx.AsyncClient,
                                                      hookswitch: HttpPeer) -> None:
    await connected(app)
    hookswitch.stop()
    await post_form(app, user_path() + "/call", destination="200")
    assert "hookswitch did not answer /v3/call_control/" in await page(app)


# -- the webhook -------------------------------------------------------------------------

async def test_signed_events_are_kept_once_and_shown_with_summaries(
        app: httpx.AsyncClient) -> None:
    body, headers = signed(call_event("RINGING"))
    for _ in range(2):  # a redelivery: the same webhook-id
        assert (await app.post("/telephony/events", content=body,
                               headers=headers)).status_code == 200
    summary = call_event("", type="summary", answered_at="1765209366386177", duration="42",
                         reason="completed", sequence="5")
    body, headers = signed(summary)
    assert (await app.post("/telephony/events", content=body, headers=headers)).status_code \
        == 200
    shown = await page(app)
    assert shown.count("<td>RINGING</td>") == 1
    assert "answered, 42 s, completed" in shown and "Jane Doe (210) → John Doe (200)" in shown


@pytest.mark.parametrize("tamper", ["body", "secret", "unsigned", "static-header",
                                    "mangled"])
async def test_events_that_do_not_verify_are_refused(app: httpx.AsyncClient,
                                                     tamper: str) -> None:
    body, headers = signed(call_event("RINGING"),
                           secret=SECRET if tamper != "secret" else "whsec_" + "A" * 32)
    if tamper == "body":
        body = body.replace(b"RINGING", b"ACTIVE")
    elif tamper == "unsigned":
        del headers["webhook-signature"]
    elif tamper == "static-header":
        del headers["X-Acme-Key"]
    elif tamper == "mangled":
        headers["webhook-signature"] = "v1"
    answer = await app.post("/telephony/events", content=body, headers=headers)
    assert answer.status_code == 401
    assert "No event yet" in await page(app)


# -- the Deactivation URL ----------------------------------------------------------------

async def test_deactivation_drops_the_user_and_shows_the_reason(
        app: httpx.AsyncClient) -> None:
    await connected(app)
    body = {"tenant_id": TENANT, "user_extension": "210", "integration": "acme-crm",
            "reason": "refresh_token_reuse"}
    refused = await app.post("/telephony/deactivate", json=body, headers={"X-Acme-Key": "no"})
    assert refused.status_code == 401 and "<b>210</b>" in await page(app)
    for _ in range(2):  # delivered again by a retry: still fine
        answer = await app.post("/telephony/deactivate", json=body, headers=VALIDATION)
        assert answer.status_code == 200
    shown = await page(app)
    assert "No user is connected yet." in shown
    assert "refresh_token_reuse" in shown and "old refresh token used again" in shown


# -- settings ----------------------------------------------------------------------------

def test_settings_default_to_the_demo_integration() -> None:
    settings = parse_settings([], {})
    assert settings == Settings(webhook_secret=DEMO_WEBHOOK_SECRET)
    assert (settings.hookswitch_url, settings.listen, settings.slug, settings.client_id,
            settings.client_secret) == ("http://127.0.0.1:8080", "127.0.0.1:9100", "acme-crm",
                                        "acme-crm", "acme-secret")
    assert settings.home_url == HOME and dict(settings.validation_headers) == VALIDATION
    assert settings.expected_webhook_headers == VALIDATION


def test_flags_win_over_environment_which_wins_over_the_demo() -> None:
    environment = {"INTEGRATOR_CLIENT_SECRET": "from-env", "INTEGRATOR_SLUG": "env-crm",
                   "INTEGRATOR_VALIDATION_HEADERS": "X-A: 1\nX-B: 2",
                   "INTEGRATOR_WEBHOOK_SECRET": SECRET}
    settings = parse_settings(["--slug", "flag-crm", "--webhook-header", "X-Hook: h"],
                              environment)
    assert (settings.slug, settings.client_secret) == ("flag-crm", "from-env")
    assert dict(settings.validation_headers) == {"X-A": "1", "X-B": "2"}
    assert settings.expected_webhook_headers == {"X-Hook": "h"}
    assert settings.webhook_secret == SECRET


def test_the_demo_secret_is_refused_off_loopback() -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--listen", "0.0.0.0:9100"], {})
    assert parse_settings(["--listen", "0.0.0.0:9100"],
                          {"INTEGRATOR_CLIENT_SECRET": "real"}).listen == "0.0.0.0:9100"
