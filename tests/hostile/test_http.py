"""Hostile requests to the HTTP API (issue 9, items 11, 12, 15 and 16).

Each answer must be a 4xx ``application/problem+json`` with a stable ``code`` and a detail
that names what was wrong; none may hold the event loop for more than a few milliseconds.
Through httpx's ASGI transport on a real database, like tests/integration.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from harness.server import OTHER_TENANT, TENANT
from hookswitch.calls.commands import RingUser
from hookswitch.config import DEFAULT_MAX_BODY_BYTES
from hookswitch.heap import settle_after_startup
from tests.support.api import URL, Api, assert_problem, c2d, hangup, running_api

JANE = {"Authorization": "Bearer tok-jane", "Content-Type": "application/json"}
USER = {"tenant_id": TENANT, "user_extension": "210"}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def hangup_with(call_leg_id: str) -> str:
    """A hangup body whose call_leg_id is raw JSON text (so it can be anything)."""
    return (f'{{"command": "hangup", "user": {json.dumps(USER)}, '
            f'"payload": {{"call_leg_id": {call_leg_id}}}}}')


def in_user_string(user_text: str) -> str:
    return json.dumps({"command": "hangup", "user": user_text,
                       "payload": {"call_leg_id": "x"}})


@pytest.fixture
async def roomy_api(tmp_path: Path, database: str) -> AsyncIterator[Api]:
    """A rate limit no test here reaches: the bodies, not the budget, are under test."""
    async with running_api(tmp_path, database, rate_limit=(10_000, 20_000)) as running:
        yield running


# --- item 11: deep nesting and huge numbers are the client's errors -------------------

@pytest.mark.parametrize("depth", [1_000, 20_000])
@pytest.mark.parametrize("place", ["in the body", "as the whole body",
                                   "in the JSON-string body form", "inside a user string"])
async def test_deeply_nested_json_is_a_400_that_says_it_is_too_deep(
    api: Api, place: str, depth: int
) -> None:
    body = {
        "in the body": hangup_with(nested(depth)),
        "as the whole body": nested(depth),
        "in the JSON-string body form": json.dumps(hangup_with(nested(depth))),
        "inside a user string": in_user_string('{"tenant_id": ' + nested(depth) + "}"),
    }[place]
    problem = assert_problem(await api.post(None, raw=body.encode()), 400, "malformed-body")
    # A string user/payload longer than 4096 characters is refused for its length first.
    named = "4096" if place == "inside a user string" and depth > 2_000 else "deep"
    assert named in problem["detail"], problem
    assert api.commands == []


BIG = "9" * 5_000


@pytest.mark.parametrize(("place", "body", "named"), [
    ("in the body", hangup_with('"x"')[:-1] + f', "extra": {BIG}}}', "number"),
    ("in the payload", hangup_with(BIG), "number"),
    ("in the JSON-string body form", json.dumps(hangup_with(BIG)), "number"),
    ("in a single-quoted dict string",
     in_user_string(f"{{'tenant_id': {BIG}, 'user_extension': '210'}}"), "characters"),
])
async def test_a_5000_digit_number_is_a_400_that_names_the_problem(
    api: Api, place: str, body: str, named: str
) -> None:
    problem = assert_problem(await api.post(None, raw=body.encode()), 400, "malformed-body")
    assert named in problem["detail"], problem


async def test_numbers_in_a_dict_string_are_bounded(api: Api) -> None:
    body = in_user_string(f"{{'tenant_id': {'1' * 4_000}, 'user_extension': '210'}}")
    problem = assert_problem(await api.post(None, raw=body.encode()), 400, "malformed-body")
    assert "digits" in problem["detail"] and "user" in problem["detail"], problem


# --- item 12: a body cap before reading, and no request that holds the loop ------------

TEN_MB = 10 * 1024 * 1024


@pytest.mark.parametrize("token", ["tok-jane", None, "not-a-token"])
async def test_a_declared_length_over_the_cap_is_413_before_anything_else(
    api: Api, token: str | None
) -> None:
    body = b'{"command": "hangup", "pad": "' + b"x" * TEN_MB + b'"}'
    problem = assert_problem(await api.post(None, token=token, raw=body), 413, "body-too-large")
    assert str(DEFAULT_MAX_BODY_BYTES) in problem["detail"], problem


async def test_the_cap_holds_for_every_route(api: Api) -> None:
    response = await api.client.request("GET", "/healthz", content=b"x" * (TEN_MB // 10))
    assert_problem(response, 413, "body-too-large")


async def test_a_chunked_body_is_counted_and_cut_at_the_cap(api: Api) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"command": "hangup", "pad": "'
        while sent < TEN_MB:
            sent += 4096
            yield b"x" * 4096
        yield b'"}'

    response = await api.client.post(URL, content=chunks(), headers=JANE)
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "body-too-large")
    assert sent <= DEFAULT_MAX_BODY_BYTES + 2 * 4096, "the server read past the cap"


async def test_a_dict_string_over_4_kib_is_a_400_that_gives_the_limit(api: Api) -> None:
    user = f"{{'tenant_id': '{TENANT}', 'user_extension': '210', 'note': '{'x' * 5_000}'}}"
    body = {"command": "click-to-dial", "user": user, "payload": {"destination": "200"}}
    problem = assert_problem(await api.post(body), 400, "malformed-body")
    assert "4096" in problem["detail"] and "user" in problem["detail"], problem
    assert api.commands == []


class LoopWatch:
    """The most CPU the event-loop thread spent between two turns of a heartbeat task:
    how long one turn of the loop (a step of request handling) kept everyone else waiting.

    Thread CPU time, not wall time: on a busy 2-core machine other processes stretch wall
    time but not this thread's CPU time, so the bound is not flaky.
    """

    def __init__(self) -> None:
        self.longest = 0.0
        self._running = True

    async def _beat(self) -> None:
        last = time.thread_time()
        while self._running:
            await asyncio.sleep(0)
            now = time.thread_time()
            self.longest = max(self.longest, now - last)
            last = now

    async def around(self, work: asyncio.Future[list[httpx.Response]]) -> list[httpx.Response]:
        beat = asyncio.create_task(self._beat())
        try:
            return await work
        finally:
            self._running = False
            await beat


def hostile_bodies() -> list[tuple[str, bytes | AsyncIterator[bytes], int]]:
    """(name, body, status): bodies at the cap, each the worst case for one part of the
    reading, and two far over it (10 MB declared, 10 MB chunked)."""
    cap = DEFAULT_MAX_BODY_BYTES
    token_soup = "{" + ", ".join(["'a': 1"] * 505) + "}"  # ~4 KiB: the most tokens allowed
    many_numbers = hangup_with('"x"')[:-1] + ', "pad": [' + ",".join(["1"] * 30_000) + "]}"
    huge_dict_string = "{'a': " + ", 'a': ".join(["1"] * (TEN_MB // 8)) + "}"

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(TEN_MB // 4096):
            yield b" " * 4096

    return [
        ("nested", nested(cap // 2 - 10).encode(), 400),
        ("many numbers", many_numbers.encode(), 404),  # a valid hangup of an unknown leg
        ("huge number", hangup_with("9" * (cap - 200)).encode(), 400),
        ("string form", json.dumps(hangup_with(nested(cap // 2 - 200))).encode(), 400),
        ("token soup", json.dumps({"command": "hangup", "user": token_soup,
                                   "payload": token_soup}).encode(), 422),
        ("long dict string", in_user_string("{'a': '" + "x" * (cap - 200) + "'}").encode(), 400),
        ("10 MB dict string", in_user_string(huge_dict_string).encode(), 413),
        ("10 MB chunked", chunked(), 413),
    ]


@pytest.fixture
def server_heap() -> Iterator[None]:
    """The garbage collector as ``hookswitch serve`` sets it after start-up (``heap.py``):
    without it, a full collection of this test process's heap (every test before it in
    this worker) is a pause the server would not have. Restored afterwards."""
    thresholds = gc.get_threshold()
    settle_after_startup()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def warm_up(api: Api) -> None:
    """First requests import and build things once; that is not what is measured."""
    await api.post(hangup("warm-up"))
    await api.post(None, raw=b"[[]]")
    await api.post(None, raw=in_user_string("{'a': 1}").encode())
    await api.client.get("/healthz")


async def test_no_hostile_body_holds_the_event_loop(roomy_api: Api, server_heap: None) -> None:
    await warm_up(roomy_api)
    bodies = hostile_bodies()
    watch = LoopWatch()

    async def one_at_a_time() -> list[httpx.Response]:
        return [await roomy_api.client.post(URL, content=body, headers=JANE)
                for _, body, _ in bodies]

    answers = await watch.around(asyncio.ensure_future(one_at_a_time()))
    assert [(name, a.status_code) for (name, _, _), a in zip(bodies, answers, strict=True)] \
        == [(name, status) for name, _, status in bodies], [a.text[:200] for a in answers]
    # A few ms is expected; 50 ms of CPU in one turn is a bug, not noise.
    assert watch.longest < 0.050, f"one turn of the loop took {watch.longest * 1000:.1f} ms"


async def test_healthz_answers_while_hostile_bodies_are_sent(roomy_api: Api,
                                                             server_heap: None) -> None:
    await warm_up(roomy_api)
    bodies = hostile_bodies()
    watch = LoopWatch()
    requests = [roomy_api.client.post(URL, content=body, headers=JANE) for _, body, _ in bodies]
    probes = [roomy_api.client.get("/healthz") for _ in bodies]
    # Interleaved, so probes are in flight while each hostile body is being handled.
    together = [call for pair in zip(requests, probes, strict=True) for call in pair]
    answers = await watch.around(asyncio.gather(*together))
    assert [a.status_code for a in answers[1::2]] == [200] * len(bodies)
    assert [a.status_code for a in answers[0::2]] == [status for _, _, status in bodies]
    assert watch.longest < 0.050, f"one turn of the loop took {watch.longest * 1000:.1f} ms"


# --- item 15: idempotency after authorisation, and bound to the request ---------------

async def test_a_reused_idempotency_key_does_not_skip_the_owner_check(api: Api) -> None:
    key = {"Idempotency-Key": "k-owner"}
    assert (await api.post(c2d(), **key)).status_code == 202
    # The same token and key, but John's extension: not Jane's to use, whatever the key.
    problem = assert_problem(await api.post(c2d(extension="200", destination="210"), **key),
                             403, "not-owner")
    assert "200" in problem["detail"]
    assert len([c for c in api.commands if isinstance(c, RingUser)]) == 1


async def test_the_same_key_with_another_body_is_422_and_rings_nobody(api: Api) -> None:
    key = {"Idempotency-Key": "k-body"}
    first = await api.post(c2d("200"), **key)
    assert first.status_code == 202
    problem = assert_problem(await api.post(c2d("+32470123456"), **key),
                             422, "idempotency-key-reused")
    assert "Idempotency-Key" in problem["detail"]
    # The same request in another of the documented body forms is the same request.
    same = {"command": "click-to-dial",
            "user": f"{{'tenant_id': '{TENANT}', 'user_extension': '210'}}",
            "payload": "{'destination': '200'}"}
    replay = await api.post(same, **key)
    assert (replay.status_code, replay.json()) == (202, first.json())
    assert len([c for c in api.commands if isinstance(c, RingUser)]) == 1


# --- item 16: messages that say what was wrong and what is expected -------------------

async def test_a_wrong_tenant_id_names_the_tokens_tenant_and_the_field(api: Api) -> None:
    problem = assert_problem(await api.post(c2d(tenant=OTHER_TENANT)), 403, "not-owner")
    detail = problem["detail"]
    assert TENANT in detail and OTHER_TENANT in detail and "user.tenant_id" in detail, detail


async def test_a_wrong_extension_names_the_tokens_extension_and_the_field(api: Api) -> None:
    problem = assert_problem(await api.post(c2d(extension="200")), 403, "not-owner")
    detail = problem["detail"]
    assert "210" in detail and "200" in detail and "user.user_extension" in detail, detail


@pytest.mark.parametrize(("body", "expected"), [
    ({"user": USER, "payload": {}},
     "the body has no command; use one of click-to-dial, hangup, hold, resume, transfer"),
    ({"command": ["hangup"], "user": USER, "payload": {}},
     "command must be a string: one of click-to-dial, hangup, hold, resume, transfer"),
    ({"command": "park" * 1_000, "user": USER, "payload": {}},
     "unknown command 'parkparkparkparkparkparkparkpark…'; use one of click-to-dial, hangup, "
     "hold, resume, transfer"),
])
async def test_a_bad_command_says_what_is_expected(api: Api, body: dict, expected: str) -> None:
    problem = assert_problem(await api.post(body), 400, "malformed-body")
    assert problem["detail"] == expected


async def test_field_problems_are_named_in_the_detail_too(api: Api) -> None:
    problem = assert_problem(
        await api.post({"command": "click-to-dial", "user": {"user_extension": "210"},
                        "payload": {}}), 422, "invalid-fields")
    assert "user.tenant_id" in problem["detail"] and "payload.destination" in problem["detail"]


async def test_a_wrong_method_and_an_unknown_path_say_what_exists(api: Api) -> None:
    wrong_method = assert_problem(await api.client.get(URL), 405, "method-not-allowed")
    assert "POST" in wrong_method["detail"] and wrong_method["detail"] != "Method Not Allowed"
    assert wrong_method.get("status") == 405
    unknown = assert_problem(await api.client.get("/v3/nothing"), 404, "not-found")
    assert "/v3/nothing" in unknown["detail"]
