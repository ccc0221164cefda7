"""``GET /v3/calls`` (the user's live calls) and ``GET /v3/calls/history`` (their ended
calls, a page at a time).

Reads do not spend the ``call-control`` rate-limit budget: an integration polling its
user's calls must not stop that user from placing one. A history page is bounded (at most
``MAX_PAGE`` legs) and found through the legs' user index.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hookswitch.api.auth import UNAUTHORIZED_ANSWER, CurrentPrincipal
from hookswitch.api.problems import documented_problem
from hookswitch.api.schemas import CallHistory, CallSummary, LiveCall, LiveCalls
from hookswitch.api.services import ServicesDep
from hookswitch.calls.leg import HangupReason, Leg
from hookswitch.calls.listing import DEFAULT_PAGE, MAX_PAGE, EndedLeg, RemoteLeg
from hookswitch.events.payload import NOT_HELD, summary_event

router = APIRouter(tags=["calls"])

UserExtension = Annotated[str | None, Query(
    min_length=1, max_length=16, examples=["210"],
    description="the token's own extension (the default); another user's is a 403")]

NOT_OWNER = documented_problem("user_extension is not the token's own extension")


@router.get(
    "/v3/calls",
    summary="The user's live calls",
    description="The legs of the token's user that have not ended, newest first (in a "
                "cluster, on every live node).",
    response_model=LiveCalls,
    responses={401: UNAUTHORIZED_ANSWER, 403: NOT_OWNER},
)
async def live_calls(services: ServicesDep, principal: CurrentPrincipal,
                     user_extension: UserExtension = None) -> LiveCalls:
    here, there = await services.call_listing.live_everywhere(principal, user_extension)
    calls = [_live(leg) for leg in here] + [_remote(leg) for leg in there]
    if there:  # newest first, then by id, as the switch orders its own
        calls.sort(key=lambda call: (int(call.since), call.call_leg_id), reverse=True)
    return LiveCalls(calls=calls)


@router.get(
    "/v3/calls/history",
    summary="The user's ended calls, a page at a time",
    description=(
        "The legs of the token's user that have ended, newest first (by end, then by id), "
        "each as its `summary` event. Pass a page's `next_cursor` as `cursor` for the next "
        "page; it is null on the last page."
    ),
    response_model=CallHistory,
    responses={
        400: documented_problem("cursor is not a next_cursor this API gave "
                                "(`invalid-cursor`)"),
        401: UNAUTHORIZED_ANSWER,
        403: NOT_OWNER,
    },
)
async def call_history(
    services: ServicesDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="legs per page")] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(
        description="the `next_cursor` of the previous page; leave out for the newest "
                    "calls")] = None,
    user_extension: UserExtension = None,
) -> CallHistory:
    page = await services.call_listing.history(principal, user_extension, cursor, limit)
    return CallHistory(calls=[_summary(leg) for leg in page.legs],
                       next_cursor=page.next_cursor)


def _live(leg: Leg) -> LiveCall:
    """A live leg as listed; names fall back to numbers, as in call events. ``since`` is
    when the leg was created (its RINGING), not the time of its last change (which the leg
    keeps too, in ``history``): a call held and resumed is still the call that started
    then."""
    return LiveCall(
        call_leg_id=leg.id, call_id=leg.call_id, state=leg.state.value,
        direction=leg.direction.value,
        caller_number=leg.caller.number, caller_name=leg.caller.name or leg.caller.number,
        callee_number=leg.callee.number, callee_name=leg.callee.name or leg.callee.number,
        since=str(leg.created_us),
    )


def _remote(leg: RemoteLeg) -> LiveCall:
    """A live leg another node holds, as recorded; the same shape and fallbacks."""
    return LiveCall(
        call_leg_id=leg.id, call_id=leg.call_id, state=leg.state, direction=leg.direction,
        caller_number=leg.caller_number, caller_name=leg.caller_name or leg.caller_number,
        callee_number=leg.callee_number, callee_name=leg.callee_name or leg.callee_number,
        since=str(leg.created_us),
    )


def _summary(leg: EndedLeg) -> CallSummary:
    """The leg's summary event, as the one writer builds it after the HANGUP
    (events/recorder.py): numbered one after the leg's last change, its time on hold
    folded over its changes in order."""
    held = NOT_HELD
    for state, at_us in leg.changes:
        held = held.after(state, at_us)
    event = summary_event(leg, leg.last_sequence + 1, leg.started_us, leg.answered_us,
                          leg.ended_us, leg.reason or HangupReason.FAILED.value, held)
    return CallSummary.model_validate(event)
