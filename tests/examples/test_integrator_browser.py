"""The example integrator as a real process, clicked through in headless Chromium.

With HOOKSWITCH_SCREENSHOTS=1 the second test saves docs/img/example-integrator.png."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.sync_api import Page, expect
from standardwebhooks import Webhook

from harness.browser import screenshot_for_docs
from harness.fixtures import MakeIntegrator
from harness.http_peer import Answer, HttpPeer, PeerRequest
from harness.ports import HOST, free_tcp_port

TENANT = "b11d749b-8eb7-4236-a068-3d94ba3860d6"
SECRET = "whsec_" + base64.b64encode(b"browser-test-webhook-secret-32b!").decode()
VALIDATION = {"X-Acme-Key": "k1"}


def test_connect_sends_the_browser_to_the_hookswitch_portal_with_a_fresh_key(
        make_integrator: MakeIntegrator, browser_page: Page) -> None:
    hookswitch = f"http://{HOST}:{free_tcp_port()}"  # nothing listens: the redirect matters
    integrator = make_integrator(hookswitch)
    # The browser's answer from that dead port, so that it lands on the portal URL instead
    # of racing to an error page.
    browser_page.route(hookswitch + "/**", lambda route: route.fulfill(body="the portal"))
    keys = []
    for _ in range(2):
        browser_page.goto(integrator.url)
        browser_page.get_by_role("button", name="Connect").click()
        expect(browser_page).to_have_url(re.compile(re.escape(hookswitch) + "/portal/"))
        target = urlsplit(browser_page.url)
        assert target.path == "/portal/activate/acme-crm"
        query = parse_qs(target.query)
        assert query["redirect_url"] == [integrator.url]
        keys.append(query["confirmation_key"][0])
    assert keys[0] != keys[1] and all(len(key) >= 32 for key in keys)


class PortalStandIn:
    """hookswitch as far as this page needs it: the portal delivers the activation and
    sends the browser back at once (no login, no consent: those are hookswitch's tests),
    and click-to-dial answers 202."""

    def __init__(self) -> None:
        self.activation_url = ""

    def __call__(self, request: PeerRequest) -> Answer:
        if request.path == "/portal/activate/acme-crm":
            query = parse_qs(request.query)
            delivered = httpx.post(
                self.activation_url, headers=VALIDATION, timeout=10,
                json={"tenant_id": TENANT, "user_extension": "210",
                      "confirmation_key": query["confirmation_key"][0],
                      "integration": "acme-crm", "access_token": "access-0",
                      "token_type": "Bearer", "expires_in": 3600,
                      "refresh_token": "refresh-0", "scope": "call-control call-events"})
            error = "" if delivered.status_code == 200 else "?error=activation_failed"
            return Answer(303, None, {"Location": query["redirect_url"][0] + error})
        if request.path == "/v3/call_control/":
            return Answer(202, {"call_leg_id": "6f0c2d1e-leg", "call_id": "2b9e-call",
                                "state": "RINGING"})
        return Answer(404)


def send_call_events(webhook_url: str) -> None:
    """A click-to-dial 210 -> 200 as hookswitch reports it to the integration's webhook."""
    start = int(time.time() * 1_000_000) - 45_000_000
    leg = {"tenant_id": TENANT, "user_extension": "210", "direction": "out",
           "caller_number": "210", "caller_name": "Jane Doe", "callee_number": "200",
           "callee_name": "John Doe", "id": "6f0c2d1e-leg", "call_id": "2b9e-call"}
    events = [
        {"type": "call", **leg, "state": "RINGING", "sequence": "1", "timestamp": start},
        {"type": "call", **leg, "state": "ACTIVE", "sequence": "2",
         "timestamp": start + 3_000_000},
        {"type": "call", **leg, "state": "HANGUP", "reason": "completed", "sequence": "3",
         "timestamp": start + 45_000_000},
        {"type": "summary", **leg, "sequence": "4", "started_at": start,
         "answered_at": start + 3_000_000, "ended_at": start + 45_000_000, "duration": 42,
         "reason": "completed", "timestamp": start + 45_000_000},
    ]
    for event in events:
        body = json.dumps({name: str(value) for name, value in event.items()})
        webhook_id, now = f"msg_{uuid.uuid4().hex}", datetime.now(tz=UTC)
        answer = httpx.post(webhook_url, content=body, timeout=10,
                            headers={"webhook-id": webhook_id,
                                     "webhook-timestamp": str(int(now.timestamp())),
                                     "webhook-signature": Webhook(SECRET).sign(
                                         webhook_id, now, body),
                                     "Content-Type": "application/json", **VALIDATION})
        assert answer.status_code == 200, answer.text


def test_a_user_connected_in_the_browser_sees_events_and_places_a_call(
        make_integrator: MakeIntegrator, browser_page: Page) -> None:
    portal = PortalStandIn()
    with HttpPeer(portal) as hookswitch:
        integrator = make_integrator(hookswitch.url, webhook_secret=SECRET)
        portal.activation_url = integrator.activation_url
        page = browser_page
        page.goto(integrator.url)
        page.get_by_role("button", name="Connect").click()
        expect(page.get_by_role("status")).to_have_text(
            f"Connected: extension 210 of tenant {TENANT}.")
        send_call_events(integrator.webhook_url)
        page.reload()
        expect(page.get_by_text("answered, 42 s, completed")).to_be_visible()
        page.get_by_label("Destination").fill("200")
        page.get_by_role("button", name="Call").click()
        expect(page.get_by_text("Call to 200: ringing your phone first")).to_be_visible()
        [call] = hookswitch.received("/v3/call_control/")
        assert call.headers["authorization"] == "Bearer access-0"
        assert call.json()["payload"] == {"destination": "200"}
        screenshot_for_docs(page, "example-integrator")
