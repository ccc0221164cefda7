"""The activation lifecycle end to end: a real browser (Chromium, Playwright), the example
integrator and ``hookswitch serve`` as processes, baresip phones, and the events worker
delivering events, summaries and deactivation notices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from harness.browser import screenshot_for_docs
from harness.ports import free_tcp_port
from harness.server import TENANT, WEB_PASSWORDS, RunningServer
from harness.wait import wait_until
from tests.support.integrations import (
    SLUG,
    WEBHOOK_SECRET,
    Integrator,
    basic,
    tokens_of,
)
from tests.support.streams import OpenStream

if TYPE_CHECKING:
    from playwright.sync_api import Page

EXAMPLE_SECRET = "acme-secret-for-the-example"


def example_toml(port: int) -> str:
    """The demo integration, at the example integrator's port."""
    base = f"http://127.0.0.1:{port}"
    return f"""
[[integrations]]
slug = "{SLUG}"
name = "Acme CRM"
client_id = "acme-crm"
client_secret = "{EXAMPLE_SECRET}"
activation_url = "{base}/telephony/activate"
deactivation_url = "{base}/telephony/deactivate"
redirect_urls = ["{base}/"]
validation_headers = {{ "X-Acme-Key" = "k1" }}
webhook_url = "{base}/telephony/events"
webhook_headers = {{ "X-Acme-Key" = "k1" }}
webhook_secret = "{WEBHOOK_SECRET}"
logo = "{Path(__file__).resolve().parents[2] / 'src/hookswitch/web/static/acme-crm.svg'}"
"""


@pytest.mark.sqlite_only  # the browser's part is not about the database; the lifecycle's
# database work runs on PostgreSQL in the next test and in tests/integration
def test_connect_in_the_browser_call_and_see_events_then_disconnect(
    server_factory, make_integrator, phone, browser_page: Page  # type: ignore[no-untyped-def]
) -> None:
    from playwright.sync_api import expect

    port = free_tcp_port()
    server: RunningServer = server_factory(extra=example_toml(port))
    integrator = make_integrator(server.http, port=port, webhook_secret=WEBHOOK_SECRET,
                                 extra_args=["--client-secret", EXAMPLE_SECRET])
    jane = phone("210", "auto", server=server)
    john = phone("200", "auto", server=server)
    page = browser_page

    # Connect → hookswitch's login → the consent page → Subscribe → back at the app.
    page.goto(integrator.url)
    page.get_by_role("button", name="Connect").click()
    page.get_by_label("User").fill("210")
    page.get_by_label("Password").fill(WEB_PASSWORDS["210"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Connect Acme CRM to your phone")).to_be_visible()
    expect(page.get_by_text("Jane Doe", exact=True)).to_be_visible()
    screenshot_for_docs(page, "consent")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("status")).to_have_text(
        f"Connected: extension 210 of tenant {TENANT}.")

    # Call from the app with the delivered token: Jane's phone rings first, then John's.
    page.get_by_label("Destination").fill("200")
    page.get_by_role("button", name="Call").click()
    jane.wait_event("CALL_ESTABLISHED")
    john.wait_event("CALL_ESTABLISHED")
    server.wait_states("210", ["RINGING", "ACTIVE"])
    jane.hangup()
    server.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(completed)"])

    # The events and the summary reached the app's webhook, signed (it checks).
    def shows(text: str) -> bool:
        page.reload()
        return text in page.content()

    wait_until(lambda: shows("HANGUP (completed)") and shows("s, completed"), 15,
               message="the app did not show the call's events and summary")
    screenshot_for_docs(page, "example-integrator")

    # Refresh now: a new pair, the old refresh token dead.
    page.get_by_role("button", name="Refresh now").click()
    expect(page.get_by_text("refreshed 1 times")).to_be_visible()

    # Disconnect in the portal: the app is told why, and its tokens stop working.
    page.goto(server.http + "/portal/integrations")
    page.get_by_role("button", name="Disconnect Acme CRM").click()
    expect(page.get_by_text("No application is connected to your phone.")).to_be_visible()
    page.goto(integrator.url)
    wait_until(lambda: shows("the user disconnected it in the hookswitch portal"), 15,
               message="the app was not told of the disconnection")
    notices = server.query("SELECT payload FROM events WHERE kind = 'deactivation'")
    assert [json.loads(n["payload"])["reason"] for n in notices] == ["user"]


@pytest.fixture
def integrator():  # type: ignore[no-untyped-def]
    integrator = Integrator().start()
    yield integrator
    integrator.stop()


def test_events_summaries_reuse_and_revocation_with_the_events_worker(
    server_factory, integrator: Integrator, phone  # type: ignore[no-untyped-def]
) -> None:
    server: RunningServer = server_factory(extra=integrator.toml(),
                                           server_extra="refresh_grace = 2")
    jane = phone("210", "auto", server=server)
    phone("200", "auto", server=server)
    with httpx.Client(base_url=server.http, timeout=10) as client:
        portal = _SyncPortal(client)
        portal.log_in()
        assert portal.subscribe().status_code == 303
        access, refresh = tokens_of(integrator.activations()[-1])
        headers = {"Authorization": f"Bearer {access}"}
        stream = OpenStream(server, access)
        assert stream.status == 200
        started = client.post("/v3/call_control/", headers=headers, json={
            "command": "click-to-dial", "user": {"tenant_id": TENANT, "user_extension": "210"},
            "payload": {"destination": "200"}})
        assert started.status_code == 202, started.text
        server.wait_states("210", ["RINGING", "ACTIVE"])
        jane.hangup()
        # Every event of Jane's leg, then its summary, signed, with the static headers.
        wait_until(lambda: len(integrator.webhook.delivered()) >= 4, 15)
        janes = integrator.webhook.delivered()
        # Only the users who activated it: John's leg of the same call is not sent.
        assert {p.event["user_extension"] for p in janes} == {"210"}
        assert [p.event.get("state", p.event["type"]) for p in janes] == [
            "RINGING", "ACTIVE", "HANGUP", "summary"]
        assert {p.event["type"] for p in janes} == {"call", "summary"}
        summary = janes[-1].event
        assert (summary["id"], summary["sequence"], summary["reason"]) == (
            started.json()["call_leg_id"], "4", "completed")
        assert summary["answered_at"] and int(summary["duration"]) >= 0
        assert summary["held_duration"] == "0"  # never held
        assert all(p.headers["x-acme-key"] == "k1" and "webhook-signature" in p.headers
                   for p in janes)
        # Rotation, a retry inside the grace window, then reuse after it.
        first = client.post("/oauth/token", headers=basic(), data={
            "grant_type": "refresh_token", "refresh_token": refresh}).json()
        assert client.post("/oauth/token", headers=basic(), data={
            "grant_type": "refresh_token", "refresh_token": refresh}).json() == first
        wait_until(lambda: client.post("/oauth/token", headers=basic(), data={
            "grant_type": "refresh_token", "refresh_token": refresh}).status_code == 400,
            10, interval=0.5)
        wait_until(lambda: integrator.deactivations(), 15,
                   message="no deactivation notice delivered")
        assert integrator.deactivations()[0]["reason"] == "refresh_token_reuse"
        refused = client.post("/v3/call_control/", json={}, headers={
            "Authorization": f"Bearer {first['access_token']}"})
        assert refused.status_code == 401
        # The family is revoked: the stream opened with its first token has ended.
        wait_until(lambda: not stream.open, 10, message="the stream outlived its token")


class _SyncPortal:
    """PortalUser's steps, for a synchronous client."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def log_in(self) -> None:
        from tests.support.integrations import csrf_of

        form = self.client.get("/portal/login")
        answer = self.client.post("/portal/login", data={
            "user": "210", "password": WEB_PASSWORDS["210"],
            "csrf_token": csrf_of(form.text)})
        assert answer.status_code == 303, answer.text

    def subscribe(self) -> httpx.Response:
        from tests.support.integrations import REDIRECT, consent_url, csrf_of

        page = self.client.get(consent_url())
        return self.client.post(f"/portal/activate/{SLUG}", data={
            "csrf_token": csrf_of(page.text), "confirmation_key": "key-1",
            "redirect_url": REDIRECT, "decision": "subscribe"})

