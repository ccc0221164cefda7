"""The activation lifecycle over HTTP: the portal (login, consent, Disconnect) and the OAuth
endpoints, against the app on a real database and the integrator's endpoints as real HTTP
servers. (The same flow with phones, the events worker and a browser: tests/e2e.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hookswitch.events.models import EventRow
from tests.support.api import Api, c2d, running_api
from tests.support.integrations import (
    CLIENT_ID,
    CLIENT_SECRET,
    EXPECTED_ACTIVATION_KEYS,
    REDIRECT,
    SLUG,
    Integrator,
    PortalUser,
    basic,
    consent_url,
    csrf_of,
    error_of,
    tokens_of,
)


@pytest.fixture
def integrator() -> AsyncIterator[Integrator]:  # type: ignore[misc]
    integrator = Integrator().start()
    yield integrator
    integrator.stop()


# The refresh grace window of this app: short, for the test that waits it out, but long
# enough that a retry "at once" is inside it on a loaded machine (1 s was not, once).
GRACE_S = 3


@pytest.fixture
async def app(tmp_path: Path, database: str, integrator: Integrator) -> AsyncIterator[Api]:
    async with running_api(tmp_path, database, extra=integrator.toml(),
                           server_extra=f"refresh_grace = {GRACE_S}") as api:
        yield api


@pytest.fixture
def jane(app: Api) -> PortalUser:
    return PortalUser(app.client)


async def activated(jane: PortalUser, integrator: Integrator, key: str = "key-1") -> tuple[str,
                                                                                           str]:
    await jane.log_in()
    answer = await jane.subscribe(key)
    assert (answer.status_code, answer.headers["location"]) == (303, REDIRECT)
    return tokens_of(integrator.activations()[-1])


async def notices(app: Api) -> list[dict[str, str]]:
    """Deactivation notices in the outbox (delivered by the events worker: tests/e2e)."""
    async with app.sessions() as session:  # type: ignore[operator]
        rows = (await session.scalars(select(EventRow.payload).where(
            EventRow.kind == "deactivation").order_by(EventRow.id))).all()
    return [json.loads(row) for row in rows]


async def token(app: Api, refresh: str, **headers: str) -> httpx.Response:
    return await app.client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": refresh},
                                 headers=headers or basic())


# --- the consent ------------------------------------------------------------------------


async def test_consent_delivers_the_users_tokens_to_the_activation_url(
    app: Api, jane: PortalUser, integrator: Integrator
) -> None:
    first = await app.client.get(consent_url())
    assert first.status_code == 303 and first.headers["location"].startswith("/portal/login?")
    assert await jane.log_in(next_url=consent_url()) == consent_url()
    answer = await jane.subscribe()
    assert (answer.status_code, answer.headers["location"]) == (303, REDIRECT)
    [activation] = integrator.activation.requests
    body = activation.event
    assert set(body) == EXPECTED_ACTIVATION_KEYS
    assert (body["tenant_id"], body["user_extension"], body["confirmation_key"],
            body["integration"], body["token_type"], body["scope"]) == (
        "b11d749b-8eb7-4236-a068-3d94ba3860d6", "210", "key-1", SLUG, "Bearer",
        "call-control call-events")
    assert body["expires_in"] == 3600
    assert activation.headers["x-acme-key"] == "k1"
    # The access token acts for Jane, exactly like her own tokens.
    works = await app.post(c2d("200"), token=body["access_token"])
    assert works.status_code == 202, works.text
    refused = await app.post(c2d("210", "200"), token=body["access_token"])
    assert refused.status_code == 403


async def test_cancel_sends_the_browser_back_with_access_denied_and_issues_nothing(
    jane: PortalUser, integrator: Integrator
) -> None:
    await jane.log_in()
    answer = await jane.subscribe(decision="cancel")
    assert answer.status_code == 303 and error_of(answer.headers["location"]) == "access_denied"
    assert integrator.activation.requests == []


@pytest.mark.parametrize("status", [500, 404])
async def test_an_activation_url_that_refuses_leaves_nothing_half_activated(
    app: Api, jane: PortalUser, integrator: Integrator, status: int
) -> None:
    integrator.activation.answers.append(status)
    await jane.log_in()
    answer = await jane.subscribe()
    assert error_of(answer.headers["location"]) == "activation_failed"
    access, refresh = tokens_of(integrator.activations()[-1])
    assert (await app.post(c2d("200"), token=access)).status_code == 401
    assert (await token(app, refresh)).json()["error"] == "invalid_grant"
    page = await app.client.get("/portal/integrations")
    assert "Disconnect" not in page.text


async def test_an_activation_url_that_never_answers_fails_after_the_timeout(
    tmp_path: Path, database: str, integrator: Integrator
) -> None:
    integrator.activation.stop()  # nobody listens: the connection is refused
    async with running_api(tmp_path, database, extra=integrator.toml()) as app:
        jane = PortalUser(app.client)
        await jane.log_in()
        answer = await jane.subscribe()
        assert error_of(answer.headers["location"]) == "activation_failed"


async def test_unknown_integration_bad_redirect_and_missing_key_are_error_pages(
    app: Api, jane: PortalUser
) -> None:
    await jane.log_in()
    unknown = await app.client.get(consent_url(slug="no-such-app"))
    assert unknown.status_code == 404 and "location" not in unknown.headers
    for redirect in ("http://evil.test/", "http://127.0.0.1:9100.evil.test/", ""):
        bad = await app.client.get(consent_url(redirect=redirect))
        assert bad.status_code == 400 and "location" not in bad.headers, redirect
    no_key = await app.client.get(consent_url(key=""))
    assert no_key.status_code == 400


async def test_a_consent_form_without_its_csrf_token_or_used_twice_is_refused(
    app: Api, jane: PortalUser, integrator: Integrator
) -> None:
    await jane.log_in()
    page = await app.client.get(consent_url())
    form = {"confirmation_key": "key-1", "redirect_url": REDIRECT, "decision": "subscribe"}
    forged = await app.client.post(f"/portal/activate/{SLUG}",
                                   data={**form, "csrf_token": "not-it"})
    assert forged.status_code == 403
    assert integrator.activation.requests == []
    good = {**form, "csrf_token": csrf_of(page.text)}
    assert (await app.client.post(f"/portal/activate/{SLUG}", data=good)).status_code == 303
    replay = await app.client.post(f"/portal/activate/{SLUG}", data=good)
    assert replay.status_code == 403
    assert len(integrator.activation.requests) == 1


async def test_activating_again_replaces_the_token_family(
    app: Api, jane: PortalUser, integrator: Integrator
) -> None:
    old_access, _ = await activated(jane, integrator, "key-1")
    await jane.subscribe("key-2")
    new_access, _ = tokens_of(integrator.activations()[-1])
    assert (await app.post(c2d("200"), token=old_access)).status_code == 401
    assert (await app.post(c2d("200"), token=new_access)).status_code == 202
    assert await notices(app) == []  # a replacement is not an end
    page = await app.client.get("/portal/integrations")
    assert page.text.count(">Disconnect<") == 1


# --- login ----------------------------------------------------------------------------------


async def test_login_refuses_wrong_and_unknown_alike_and_slows_guessing_per_user_and_source(
    app: Api,
) -> None:
    guesser = PortalUser(app.client)
    answers = []
    for _ in range(6):
        form = await app.client.get("/portal/login")
        answer = await app.client.post("/portal/login", data={
            "user": "210", "password": "not-it", "csrf_token": csrf_of(form.text)})
        answers.append(answer.status_code)
    assert answers == [401] * 5 + [429]
    form = await app.client.get("/portal/login")
    unknown = await app.client.post("/portal/login", data={
        "user": "299", "password": "not-it", "csrf_token": csrf_of(form.text)})
    assert unknown.status_code == 401  # same as a wrong password
    # Another user from the same address is not held back.
    assert await PortalUser(app.client, "200").log_in() == "/portal/"
    del guesser


async def test_a_login_form_from_elsewhere_is_refused(app: Api) -> None:
    answer = await app.client.post("/portal/login", data={
        "user": "210", "password": "web-pass-210-jane", "csrf_token": "forged"})
    assert answer.status_code == 403 and "hs_session" not in answer.headers.get(
        "set-cookie", "")


async def test_logout_needs_the_csrf_token_and_ends_the_session(
    app: Api, jane: PortalUser
) -> None:
    await jane.log_in()
    page = await app.client.get("/portal/integrations")
    forged = await app.client.post("/portal/logout", data={"csrf_token": "x"})
    assert forged.status_code == 403, (forged.headers, page.status_code)
    out = await app.client.post("/portal/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303
    again = await app.client.get("/portal/integrations")
    assert again.status_code == 303 and again.headers["location"].startswith("/portal/login")


# --- the OAuth endpoints --------------------------------------------------------------------


async def test_refresh_rotates_and_a_retry_within_the_grace_window_gets_the_same_pair(
    app: Api, jane: PortalUser, integrator: Integrator
) -> None:
    _, refresh = await activated(jane, integrator)
    first = await token(app, refresh)
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    pair = first.json()
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert pair["refresh_token"] != refresh
    retry = await token(app, refresh)  # the answer was lost: same token again, at once
    assert retry.json() == pair
    assert (await app.post(c2d("200"), token=pair["access_token"])).status_code == 202
    # The new refresh token works (and makes the one before it dead).
    assert (await token(app, pair["refresh_token"])).status_code == 200


async def test_reusing_a_dead_refresh_token_revokes_the_family_and_deactivates(
    app: Api, jane: PortalUser, integrator: Integrator
) -> None:
    access, refresh = await activated(jane, integrator)
    pair = (await token(app, refresh)).json()
    await asyncio.sleep(GRACE_S + 0.2)  # past refresh_grace: the clock is the point
    stolen = await token(app, refresh)
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    for dead in (access, pair["access_token"]):
        answer = await app.post(c2d("200"), token=dead)
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert (await token(app, pair["refresh_token"])).json()["error"] == "invalid_grant"
    [notice] = await notices(app)
    assert notice == {"tenant_id": "b11d749b-8eb7-4236-a068-3d94ba3860d6",
                      "user_extension": "210", "integration": SLUG,
                      "reason": "refresh_token_reuse", "confirmation_key": "key-1"}


async def test_token_endpoint_errors_are_rfc_6749_objects(
    app: Api, jane: PortalUser, integrator: Integrator
) -> None:
    _, refresh = await activated(jane, integrator)
    cases = [
        ({"grant_type": "refresh_token", "refresh_token": refresh},
         basic(secret="wrong"), 401, "invalid_client"),
        ({"grant_type": "refresh_token", "refresh_token": refresh},
         basic("nobody"), 401, "invalid_client"),
        ({"grant_type": "refresh_token", "refresh_token": refresh}, {}, 401, "invalid_client"),
        ({"refresh_token": refresh}, basic(), 400, "invalid_request"),
        ({"grant_type": "refresh_token"}, basic(), 400, "invalid_request"),
        ({"grant_type": "password", "username": "x"}, basic(), 400, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "hsr_unknown"}, basic(), 400,
         "invalid_grant"),
    ]
    for form, headers, status, error in cases:
        answer = await app.client.post("/oauth/token", data=form, headers=headers)
        assert (answer.status_code, answer.json()["error"]) == (status, error), (form, headers)
        assert answer.json()["error_description"]
    # Client authentication by form fields works too.
    fields = await app.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh, "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET})
    assert fields.status_code == 200


async def test_revoking_the_refresh_token_ends_the_activation_and_an_access_token_alone(
    app: Api, jane: PortalUser, integrator: Integrator
) -> None:
    access, refresh = await activated(jane, integrator)
    unknown = await app.client.post("/oauth/revoke", data={"token": "whatever"},
                                    headers=basic())
    assert unknown.status_code == 200
    assert (await app.client.post("/oauth/revoke", data={"token": access},
                                  headers=basic())).status_code == 200
    assert (await app.post(c2d("200"), token=access)).status_code == 401
    pair = (await token(app, refresh)).json()  # the activation lives on
    assert (await app.post(c2d("200"), token=pair["access_token"])).status_code == 202
    await app.client.post("/oauth/revoke", data={"token": pair["refresh_token"],
                                                 "token_type_hint": "refresh_token"},
                          headers=basic())
    assert (await app.post(c2d("200"), token=pair["access_token"])).status_code == 401
    assert [n["reason"] for n in await notices(app)] == ["integrator"]


async def test_introspection_tells_the_integration_about_its_own_tokens_only(
    app: Api, jane: PortalUser, integrator: Integrator
) -> None:
    access, _ = await activated(jane, integrator)
    answer = (await app.client.post("/oauth/introspect", data={"token": access},
                                    headers=basic())).json()
    assert answer["active"] is True
    assert (answer["client_id"], answer["sub"], answer["user_extension"]) == (
        CLIENT_ID, "210@b11d749b-8eb7-4236-a068-3d94ba3860d6", "210")
    assert answer["scope"] == "call-control call-events" and answer["exp"] > 0
    for token_text in ("tok-jane", "made-up"):
        inactive = await app.client.post("/oauth/introspect", data={"token": token_text},
                                         headers=basic())
        assert inactive.json() == {"active": False}


async def test_disconnect_in_the_portal_ends_the_activation_and_says_why(
    app: Api, jane: PortalUser, integrator: Integrator
) -> None:
    access, _ = await activated(jane, integrator)
    page = await app.client.get("/portal/integrations")
    assert "Acme CRM" in page.text
    activation = page.text.split("/portal/integrations/")[1].split("/disconnect")[0]
    answer = await app.client.post(f"/portal/integrations/{activation}/disconnect",
                                   data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303
    assert (await app.post(c2d("200"), token=access)).status_code == 401
    assert "Acme CRM" not in (await app.client.get("/portal/integrations")).text
    assert [n["reason"] for n in await notices(app)] == ["user"]


# --- the provisioning file --------------------------------------------------------------


async def test_removing_the_user_or_the_integration_from_the_file_ends_and_announces(
    tmp_path: Path, database: str, integrator: Integrator
) -> None:
    async with running_api(tmp_path, database, extra=integrator.toml()) as app:
        await activated(PortalUser(app.client), integrator)
        await PortalUser(app.client, "200").log_in()
        page = await app.client.get(consent_url("key-2"))
        await app.client.post(f"/portal/activate/{SLUG}", data={
            "csrf_token": csrf_of(page.text), "confirmation_key": "key-2",
            "redirect_url": REDIRECT, "decision": "subscribe"})
    text = (tmp_path / "p.toml").read_text()
    without_jane = text.split('[[tenants.users]]\nextension = "210"')[0] + \
        '[[tenants.users]]\nextension = "220"' + text.split('extension = "220"', 1)[1]
    (tmp_path / "p.toml").write_text(without_jane)
    async with running_api(tmp_path, database, extra=integrator.toml()) as app:
        assert [n["reason"] for n in await notices(app)] == ["user_removed"]
    async with running_api(tmp_path, database) as app:  # the integration is gone too
        reasons = [n["reason"] for n in await notices(app)]
        assert reasons == ["user_removed", "integration_removed"]
        assert (await app.client.get(consent_url())).status_code in (303, 404)
        await PortalUser(app.client, "200").log_in()
        assert (await app.client.get(consent_url())).status_code == 404
