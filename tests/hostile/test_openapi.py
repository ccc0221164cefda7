"""Property-based run of schemathesis over ``/openapi.json`` against the real app.

A few hundred generated cases, derandomised (the same cases every run), with valid and
invalid bearer tokens; every built-in check is on: no 5xx, every status documented, every
body and header as documented, invalid input refused, auth enforced. ``/v3/events`` never
ends on success: its stream is read for half a second, and that answer is checked too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.generation.meta import negated_parameters

from harness.server import OTHER_TENANT, TENANT
from tests.support.api import running_api
from tests.support.integrations import Integrator

CONFIG = schemathesis.Config.from_str("""
request-timeout = 10

# A 200 from /v3/events streams until the client leaves: the app below ends it after its
# first chunk (a retry: field), and that answer is checked like any other.
[[operations]]
include-path = "/v3/events"
# Last-Event-ID is "0" or the id of one of the user's own events: any other text, even one
# shaped like an event id, is a 400 (an id that names nothing of this user's).
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "429"]

# A generated cursor is (nearly always) not one the API gave: 400 invalid-cursor.
[[operations]]
include-path = "/v3/calls/history"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403"]

# The OAuth endpoints: generated clients and tokens are (nearly always) unknown, so a valid
# request is refused as RFC 6749 says: 401 invalid_client, 400 invalid_grant.
[[operations]]
include-path-regex = "^/oauth/"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401"]

# A well-formed click-to-dial may name a destination its tenant cannot call (no such
# extension, no trunk for numbers, the user's own extension): 422 invalid-destination,
# as DESIGN.md says, not a sign that valid data was refused.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
""")

# Destinations that can be called, and the fixture's first leg ids (tests/support/api.py
# numbers them leg-0002, leg-0004, ... as click-to-dials are made); "" leaves it as drawn.
TARGETS = ["", "200", "+32470123456", "leg-0002", "leg-0004"]
# Jane's and another tenant's real tokens, a made-up one, and none.
TOKENS = ["tok-jane", "tok-other", "not-a-token", None]
OWN_USER = {"tok-jane": {"tenant_id": TENANT, "user_extension": "210"},
            "tok-other": {"tenant_id": OTHER_TENANT, "user_extension": "300"}}


class AppBuiltOnItsLoop:
    """The app and its database, built in the ASGI lifespan: schemathesis serves the app
    from an event loop of its own, and the database engine must be made on that loop."""

    def __init__(self, folder: Path, database: str) -> None:
        self.folder = folder
        self.database = database
        self.app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v3/events":
            await _first_chunk_only(self.app, scope, receive, send)
            return
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        async with AsyncExitStack() as stack:
            await receive()  # lifespan.startup
            # Generous limits: the run is about answers matching the document, and a
            # spent budget would make most of them 429.
            api = await stack.enter_async_context(
                running_api(self.folder, self.database, rate_limit=(1_000, 2_000),
                            extra=Integrator().toml()))
            self.app = api.app
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})


async def _first_chunk_only(app: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Serve a request, but end a streamed answer after its first chunk, as a client that
    leaves would: the app is told the client disconnected. (Before, the run cut the stream
    with a 0.5 s read timeout, which a loaded machine also hit for answers that do end.)"""
    ended = asyncio.Event()

    async def send_until_ended(message: dict[str, Any]) -> None:
        if ended.is_set():
            return
        if message["type"] == "http.response.body":
            await send({**message, "more_body": False})
            ended.set()
            return
        await send(message)

    async def receive_until_ended() -> dict[str, Any]:
        if ended.is_set():
            return {"type": "http.disconnect"}
        incoming = asyncio.ensure_future(receive())
        stop = asyncio.ensure_future(ended.wait())
        done, _ = await asyncio.wait({incoming, stop}, return_when=asyncio.FIRST_COMPLETED)
        if incoming in done:
            stop.cancel()
            return incoming.result()  # type: ignore[no-any-return]
        incoming.cancel()
        return {"type": "http.disconnect"}

    await app(scope, receive_until_ended, send_until_ended)


# Examples per operation and mode: a few hundred in all. /healthz and /metrics have no
# inputs, so no invalid ones either.
CALLS = {"GET /v3/calls": 20, "GET /v3/calls/history": 30}
OAUTH = {"POST /oauth/token": 30, "POST /oauth/revoke": 20, "POST /oauth/introspect": 20}
EXAMPLES = {
    GenerationMode.POSITIVE: {"POST /v3/call_control/": 120, "GET /v3/events": 30,
                              "GET /healthz": 5, "GET /metrics": 3, **CALLS, **OAUTH},
    GenerationMode.NEGATIVE: {"POST /v3/call_control/": 120, "GET /v3/events": 30, **CALLS,
                              **OAUTH},
}


@pytest.fixture
def api_schema(tmp_path: Path, database: str) -> Iterator[Any]:
    """The schema as the app serves it; its lifespan (the database) ends with the test,
    which schemathesis's pytest plugin does for every test that started one."""
    yield schemathesis.openapi.from_asgi("/openapi.json", AppBuiltOnItsLoop(tmp_path, database),
                                         config=CONFIG)


class Bearer(requests.auth.AuthBase):
    """Given as the call's ``auth``, so schemathesis knows the credentials are meant to be
    valid and probes the operation without them and with made-up ones (``ignored_auth``)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def steer(case: Any, token: str | None, own_user: bool, target: str) -> tuple[Any, str | None]:
    """Half the bodies (and ``user_extension`` queries) name the token's own user, and some
    of those bodies a destination or a leg that exists, so the run also reaches the answers
    behind the 403: 202, 200, 404, 422."""
    query = case.query
    if own_user and token in OWN_USER and isinstance(query, dict) and "user_extension" in query:
        case.query = {**query, "user_extension": OWN_USER[token]["user_extension"]}
    body = case.body
    if own_user and token in OWN_USER and isinstance(body, dict):
        body = {**body, "user": OWN_USER[token]}
        payload = body.get("payload")
        if target and isinstance(payload, dict):
            key = "destination" if body.get("command") == "click-to-dial" else "call_leg_id"
            body["payload"] = {**payload, key: target}
        case.body = body
    return case, token


@pytest.mark.sqlite_only  # the answers' shapes do not depend on the database
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_every_answer_is_documented_and_none_is_a_5xx(api_schema: Any,
                                                       mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {operation.label for operation in operations} == set(EXAMPLES[GenerationMode.POSITIVE])
    for operation in (op for op in operations if op.label in EXAMPLES[mode]):
        cases = st.builds(steer, operation.as_strategy(generation_mode=mode),
                          st.sampled_from(TOKENS), st.booleans(), st.sampled_from(TARGETS))

        # derandomize: the same cases on every run, so a failure is reproducible.
        @settings(max_examples=EXAMPLES[mode][operation.label], derandomize=True, deadline=None,
                  database=None, suppress_health_check=list(HealthCheck))
        @given(case_and_token=cases)
        def check(case_and_token: tuple[Any, str | None]) -> None:
            case, token = case_and_token
            # No token, or a case whose point is missing or broken credentials: the request
            # goes as generated.
            keep_generated = token is None or any(
                name.lower() == "authorization" for name, _ in negated_parameters(case.meta))
            case.call_and_validate(auth=None if keep_generated else Bearer(token))

        check()
