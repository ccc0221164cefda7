"""``hookswitch integrations create|list|rotate-secret|deactivate`` as an operator runs them,
against the database an app is serving."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from harness.server import HOOKSWITCH, TENANT
from hookswitch.events.models import EventRow
from tests.support.api import Api, c2d, running_api
from tests.support.integrations import Integrator, PortalUser, csrf_of, tokens_of


async def cli(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [str(HOOKSWITCH), "integrations", *args,
                                                    "--db", database],
                                   capture_output=True, text=True, timeout=60)


@pytest.fixture
def integrator():  # type: ignore[no-untyped-def]
    integrator = Integrator().start()
    yield integrator
    integrator.stop()


@pytest.fixture
async def app(tmp_path: Path, database: str) -> AsyncIterator[Api]:
    async with running_api(tmp_path, database) as api:
        yield api


async def test_create_list_rotate_and_deactivate(
    app: Api, database: str, integrator: Integrator
) -> None:
    made = await cli(database, "create", "--slug", "helpdesk", "--name", "Help Desk",
                     "--activation-url", integrator.activation.url,
                     "--deactivation-url", integrator.deactivation.url,
                     "--redirect-url", "http://127.0.0.1:9200/",
                     "--validation-header", "X-Key: k2", "--webhook-url", integrator.webhook.url)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.split("client_secret ")[1].strip()
    assert "client_id helpdesk" in made.stdout and secret.startswith("hss_")
    again = await cli(database, "create", "--slug", "helpdesk", "--name", "Again",
                      "--activation-url", integrator.activation.url,
                      "--deactivation-url", integrator.deactivation.url,
                      "--redirect-url", "http://127.0.0.1:9200/")
    assert again.returncode == 1 and "exists already" in again.stderr
    listed = await cli(database, "list")
    assert "helpdesk\tHelp Desk\tclient_id=helpdesk\tsource=cli\tactive=0" in listed.stdout

    # A user connects it in the portal.
    jane = PortalUser(app.client)
    await jane.log_in()
    page = await app.client.get("/portal/activate/helpdesk", params={
        "confirmation_key": "k", "redirect_url": "http://127.0.0.1:9200/back"})
    answer = await app.client.post("/portal/activate/helpdesk", data={
        "csrf_token": csrf_of(page.text), "confirmation_key": "k",
        "redirect_url": "http://127.0.0.1:9200/back", "decision": "subscribe"})
    assert answer.headers["location"] == "http://127.0.0.1:9200/back"
    assert integrator.activation.requests[0].headers["x-key"] == "k2"
    access, refresh = tokens_of(integrator.activations()[0])
    assert "active=1" in (await cli(database, "list")).stdout

    # A new secret: the old one is refused at once, the new one works.
    rotated = await cli(database, "rotate-secret", "helpdesk")
    new_secret = rotated.stdout.split("client_secret ")[1].strip()
    old = await app.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh, "client_id": "helpdesk",
        "client_secret": secret})
    assert old.status_code == 401
    pair = (await app.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh, "client_id": "helpdesk",
        "client_secret": new_secret})).json()

    # The operator ends it: tokens refused, the integrator told why (in the outbox).
    ended = await cli(database, "deactivate", "helpdesk", "--tenant", TENANT,
                      "--extension", "210")
    assert ended.stdout.strip() == "1 activation(s) ended"
    assert (await app.post(c2d("200"), token=pair["access_token"])).status_code == 401
    async with app.sessions() as session:  # type: ignore[operator]
        [payload] = (await session.scalars(select(EventRow.payload).where(
            EventRow.kind == "deactivation"))).all()
    assert json.loads(payload)["reason"] == "admin"
    del access


async def test_a_file_integration_keeps_its_secret_in_the_file(
    tmp_path: Path, database: str, integrator: Integrator
) -> None:
    async with running_api(tmp_path, database, extra=integrator.toml()):
        pass
    refused = await cli(database, "rotate-secret", "acme-crm")
    assert refused.returncode == 1 and "provisioning file" in refused.stderr
    unknown = await cli(database, "deactivate", "nope")
    assert unknown.returncode == 1 and "no integration" in unknown.stderr
