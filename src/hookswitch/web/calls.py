"""The portal's web app: the Calls page (dial, the user's phones, live calls with Hang up,
Hold, Resume and Transfer), its live stream, and the History page.

The same services as the API: ``CallControl`` for the commands (its ownership checks), the
``call-control`` rate limit per user, ``CallListing`` for the reads. Every command is a POST
form with the session's CSRF token. Without JavaScript it answers 303 back to the Calls
page (or the page with the refusal in it); with htmx (``HX-Request``) it answers the live
calls fragment, which htmx swaps in. The fragment is also what the page's stream
(``GET /portal/calls/stream``, Server-Sent Events, ``event: calls``) sends on connect and
after each committed call event of the user: the rows follow the calls without reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Request
from fastapi.responses import Response

from hookswitch.api.problems import message_of, status_of
from hookswitch.api.routes.events import ListenerStream
from hookswitch.api.services import Services, ServicesDep
from hookswitch.calls.errors import HookswitchError
from hookswitch.calls.leg import Direction, Leg, LegState
from hookswitch.calls.listing import EndedLeg
from hookswitch.calls.policy import Principal
from hookswitch.clock import now_us
from hookswitch.directory.sessions import WebSession, session_for
from hookswitch.events.stream import KEEPALIVE, Listener
from hookswitch.web.routes import error_page, page, router, see_other, templates
from hookswitch.web.session import PATH, SESSION_COOKIE, MaybeSession, same

HISTORY_PAGE = 20
FormText = Annotated[str, Form(max_length=2000)]
STATES = {LegState.RINGING: "Ringing", LegState.ACTIVE: "Active", LegState.HELD: "On hold",
          LegState.HANGUP: "Ended"}
RESULTS = {"completed": "Completed", "cancelled": "Cancelled", "no-answer": "No answer",
           "busy": "Busy", "rejected": "Rejected", "unavailable": "Unavailable",
           "api": "Hung up from the web or an app", "transferred": "Transferred",
           "failed": "Failed"}


def _clock(us: int | None) -> str:
    if us is None:
        return ""
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


templates.env.filters["clock_us"] = _clock
templates.env.filters["duration"] = _duration


def _party(name: str, number: str) -> str:
    return f"{name} ({number})" if name and name != number else number


def _row(leg: Leg) -> dict[str, object]:
    return {"id": leg.id, "state": leg.state.value, "state_text": STATES[leg.state],
            "direction": "Outgoing" if leg.direction is Direction.OUT else "Incoming",
            "other": _party(leg.other.name, leg.other.number),
            "since_us": leg.created_us, "changed_us": leg.history[-1].at_us,
            "answered": leg.answered}


def _live(services: Services, session: WebSession, message: str | None) -> dict[str, object]:
    """What the live calls fragment shows."""
    principal = session.principal
    rows = [_row(leg) for leg in services.call_listing.live(principal, None)]
    devices = services.devices(principal.user_id)
    since = [d.since for d in devices if d.since is not None]
    if message:
        announce = message
    elif rows:
        announce = "; ".join(f"{r['direction']} call, {r['other']}: {r['state_text']}"
                           for r in rows)
    else:
        announce = "No call in progress."
    return {"session": session, "rows": rows, "devices": len(devices), "rendered_us": now_us(),
            "devices_since": min(since) if since else None, "message": message,
            "announce": announce}


def _fragment(services: Services, session: WebSession, message: str | None = None, *,
              command: bool = False, announce: bool = True) -> str:
    """The live calls, to swap in; with ``announce``, the status region's text too (not
    on the stream's first message: the page has it), and a ``command``'s answer replaces
    the message (a refusal, or none)."""
    return templates.get_template("calls_live.html").render(
        {**_live(services, session, message), "oob": announce, "command": command})


def _login(next_url: str) -> Response:
    return see_other(PATH + "/login?" + urlencode({"next": next_url}))


# --- the Calls page ------------------------------------------------------------------------


@router.get("/portal/")
async def calls(request: Request, services: ServicesDep, session: MaybeSession) -> Response:
    if session is None:
        return _login(PATH + "/")
    return _calls_page(request, services, session)


def _calls_page(request: Request, services: Services, session: WebSession,
                message: str | None = None, status: int = 200) -> Response:
    return page(request, "calls.html", status, **_live(services, session, message))


@router.get("/portal/calls/stream")
async def calls_stream(request: Request, services: ServicesDep,
                       session: MaybeSession) -> Response:
    if session is None:
        return Response(status_code=204)  # EventSource: stop reconnecting
    broadcaster = services.broadcaster
    try:
        listener = broadcaster.open(session.principal.user_id, None)
    except HookswitchError as error:
        return Response(message_of(error), status_code=status_of(error))
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return ListenerStream(broadcaster, listener, _frames(services, session, cookie, listener))


async def _frames(services: Services, session: WebSession, cookie: str,
                  listener: Listener) -> AsyncIterator[str]:
    """The fragment now, then again after each batch of the user's committed events, as
    long as the session lasts (looked at with each batch and each keep-alive)."""
    yield "retry: 2000\n\n"
    yield _sse(_fragment(services, session, announce=False))
    while True:
        try:
            item = await asyncio.wait_for(listener.queue.get(), KEEPALIVE)
        except TimeoutError:
            if not await _alive(services, cookie):
                return
            yield ": keep-alive\n\n"
            continue
        ended = item is None
        while not listener.queue.empty():  # a burst of events: one render
            ended = listener.queue.get_nowait() is None or ended
        if ended or not await _alive(services, cookie):
            return
        yield _sse(_fragment(services, session))


async def _alive(services: Services, cookie: str) -> bool:
    async with services.sessions() as db:
        return await session_for(db, cookie) is not None


def _sse(html: str) -> str:
    return "event: calls\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"


# --- commands ------------------------------------------------------------------------------

Command = Callable[[Principal], Awaitable[object]]


async def _command(request: Request, services: Services, session: WebSession | None,
                   csrf_token: str, command: Command) -> Response:
    """Check the form, spend the user's call-control budget, run ``command``; answer as the
    module says. A refusal (409, 422, 429, ...) is a message in the page, not an error
    page."""
    if session is None:
        return _login(PATH + "/")
    if not same(csrf_token, session.csrf_token):
        return error_page(request, 403, "Nothing was done",
                          "This form did not come from this site.", session)
    message, status = None, 200
    verdict = await services.rate_limiter.hit(session.principal.user_id)
    if not verdict.allowed:
        message, status = "Too many requests: " + verdict.refusal() + ".", 429
    else:
        try:
            await command(session.principal)
        except HookswitchError as error:
            message, status = message_of(error), status_of(error)
    if request.headers.get("HX-Request") == "true":
        return Response(_fragment(services, session, message, command=True),
                        media_type="text/html",
                        headers={"Cache-Control": "no-store"})
    if message is None:
        return see_other(PATH + "/")
    return _calls_page(request, services, session, message, status)


def _own(principal: Principal) -> tuple[Principal, str, str]:
    return principal, principal.tenant_id, principal.extension


@router.post("/portal/calls/dial")
async def dial(request: Request, services: ServicesDep, session: MaybeSession,
               destination: FormText = "", csrf_token: FormText = "") -> Response:
    control = services.call_control
    return await _command(request, services, session, csrf_token, lambda principal:
                          control.click_to_dial(*_own(principal), destination.strip()))


@router.post("/portal/calls/{leg_id}/{action}")
async def leg_command(request: Request, services: ServicesDep, session: MaybeSession,
                      leg_id: str, action: str, destination: FormText = "",
                      csrf_token: FormText = "") -> Response:
    control = services.call_control
    actions: dict[str, Command] = {
        "hangup": lambda principal: control.hangup(*_own(principal), leg_id[:64]),
        "hold": lambda principal: control.hold(*_own(principal), leg_id[:64]),
        "resume": lambda principal: control.resume(*_own(principal), leg_id[:64]),
        "transfer": lambda principal: control.transfer(*_own(principal), leg_id[:64],
                                                       destination.strip()),
    }
    if action not in actions:
        return error_page(request, 404, "No such page", "There is nothing here.", session)
    return await _command(request, services, session, csrf_token, actions[action])


# --- History ---------------------------------------------------------------------------------


def _ended(leg: EndedLeg) -> dict[str, object]:
    out = leg.direction == Direction.OUT.value
    number, name = ((leg.callee_number, leg.callee_name) if out
                    else (leg.caller_number, leg.caller_name))
    talked = (leg.ended_us - leg.answered_us) / 1e6 if leg.answered_us else 0.0
    return {"id": leg.id, "direction": "Outgoing" if out else "Incoming", "number": number,
            "other": _party(name, number),
            "started_us": leg.started_us, "duration": talked,
            "result": RESULTS.get(leg.reason or "failed", leg.reason)}


@router.get("/portal/history")
async def history(request: Request, services: ServicesDep, session: MaybeSession,
                  cursor: str | None = None) -> Response:
    if session is None:
        return _login(PATH + "/history")
    try:
        found = await services.call_listing.history(session.principal, None, cursor,
                                                    HISTORY_PAGE)
    except HookswitchError as error:
        return error_page(request, status_of(error), "No such page of history",
                          message_of(error), session)
    return page(request, "history.html", session=session,
                rows=[_ended(leg) for leg in found.legs], next_cursor=found.next_cursor,
                first=cursor is None)
