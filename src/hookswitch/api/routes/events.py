"""``GET /v3/events``: the authenticated user's call events as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from hookswitch.api.auth import UNAUTHORIZED_ANSWER, CurrentPrincipal
from hookswitch.api.problems import ApiProblem, documented_problem

router = APIRouter(tags=["call events"])


@router.get(
    "/v3/events",
    summary="Live call events of the token's user (text/event-stream)",
    description=(
        "One SSE message per state change of the user's legs (`event: call`, `data:` the "
        "same JSON object the webhooks receive, `id:` a increasing number). Reconnect with "
        "`Last-Event-ID` to get what was missed, from the durable outbox."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"description": "the stream: `event: call` messages, `: keep-alive` comments",
              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        400: documented_problem("Last-Event-ID is not an id this stream sent"),
        401: UNAUTHORIZED_ANSWER,
        429: documented_problem("too many open streams for this user"),
    },
)
async def events(
    request: Request,
    principal: CurrentPrincipal,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    resume: int | None = None
    if last_event_id:
        if not last_event_id.isdigit():
            raise ApiProblem(400, "bad-last-event-id", "Bad Last-Event-ID",
                             "Last-Event-ID must be the id of an event this stream sent")
        resume = int(last_event_id)
    broadcaster = request.app.state.services.broadcaster
    return StreamingResponse(
        broadcaster.stream(principal.user_id, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
