"""An integration for the tests, its receivers (Activation URL, Deactivation URL, webhook:
real HTTP servers on loopback), and a portal user's browser session driven over HTTP."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from harness.receiver import Receiver
from harness.server import TENANT, WEB_PASSWORDS

SLUG = "acme-crm"
CLIENT_ID = "acme-crm"
CLIENT_SECRET = "acme-secret-for-tests"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VALIDATION = {"X-Acme-Key": "k1"}
REDIRECT = "http://127.0.0.1:9100/"


@dataclass
class Integrator:
    """The integrator's three endpoints, each a real HTTP server."""

    activation: Receiver = field(default_factory=Receiver)
    deactivation: Receiver = field(default_factory=Receiver)
    webhook: Receiver = field(default_factory=Receiver)

    def start(self) -> Integrator:
        for receiver in (self.activation, self.deactivation, self.webhook):
            receiver.start()
        return self

    def stop(self) -> None:
        for receiver in (self.activation, self.deactivation, self.webhook):
            receiver.stop()

    def toml(self, redirect: str = REDIRECT) -> str:
        return f"""
[[integrations]]
slug = "{SLUG}"
name = "Acme CRM"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
activation_url = "{self.activation.url}"
deactivation_url = "{self.deactivation.url}"
redirect_urls = ["{redirect}"]
validation_headers = {{ "X-Acme-Key" = "k1" }}
webhook_url = "{self.webhook.url}"
webhook_headers = {{ "X-Acme-Key" = "k1" }}
webhook_secret = "{WEBHOOK_SECRET}"
"""

    def activations(self) -> list[dict[str, Any]]:
        return [post.event for post in self.activation.requests]

    def deactivations(self) -> list[dict[str, Any]]:
        return [post.event for post in self.deactivation.delivered()]


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no csrf_token in the page"
    return found.group(1)


def consent_url(key: str = "key-1", redirect: str = REDIRECT, slug: str = SLUG) -> str:
    return f"/portal/activate/{slug}?" + urlencode({"confirmation_key": key,
                                                    "redirect_url": redirect})


@dataclass
class PortalUser:
    """A browser, over HTTP: cookies kept, redirects read rather than followed."""

    client: httpx.AsyncClient
    extension: str = "210"

    async def log_in(self, password: str | None = None, next_url: str = "/portal/") -> str:
        form = await self.client.get("/portal/login", params={"next": next_url})
        answer = await self.client.post("/portal/login", data={
            "user": self.extension, "password": password or WEB_PASSWORDS[self.extension],
            "csrf_token": csrf_of(form.text), "next": next_url})
        assert answer.status_code in (303, 401, 429), answer.text
        return answer.headers.get("location", "")

    async def subscribe(self, key: str = "key-1", redirect: str = REDIRECT,
                        decision: str = "subscribe") -> httpx.Response:
        page = await self.client.get(consent_url(key, redirect))
        assert page.status_code == 200, page.text
        assert "Subscribe" in page.text and "Cancel" in page.text
        return await self.client.post(f"/portal/activate/{SLUG}", data={
            "csrf_token": csrf_of(page.text), "confirmation_key": key,
            "redirect_url": redirect, "decision": decision})


def error_of(location: str) -> str | None:
    return parse_qs(urlsplit(location).query).get("error", [None])[0]


def tokens_of(activation: dict[str, Any]) -> tuple[str, str]:
    return activation["access_token"], activation["refresh_token"]


EXPECTED_ACTIVATION_KEYS = {"tenant_id", "user_extension", "confirmation_key", "integration",
                            "access_token", "token_type", "expires_in", "refresh_token",
                            "scope"}
OWN = {"tenant_id": TENANT, "user_extension": "210"}
