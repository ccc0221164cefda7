"""``GET /v3/events``: the authenticated user's call events as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from hookswitch.api.auth import UNAUTHORIZED_ANSWER, CurrentPrincipal
from hookswitch.api.problems import documented_problem
from hookswitch.api.services import ServicesDep
from hookswitch.events.stream import Broadcaster, Listener

router = APIRouter(tags=["call events"])


class ListenerStream(StreamingResponse):
    """A text/event-stream that unregisters its listener however it ends (client gone,
    server stopping, token revoked), even if it never sent a byte. The portal's live calls
    (web/calls.py) are one too, with their own body."""

    def __init__(self, broadcaster: Broadcaster, listener: Listener,
                 body: AsyncIterator[str]) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._broadcaster = broadcaster
        self._listener = listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._broadcaster.close(self._listener)


@router.get(
    "/v3/events",
    summary="Live call events of the token's user (text/event-stream)",
    description=(
        "One SSE message per state change of the user's legs (`event: call`, `data:` the "
        "same JSON object the webhooks receive, `id:` the event's unique id, also its "
        "`webhook-id`). Reconnect with `Last-Event-ID` set to the last id received to get "
        "what was missed, from the durable outbox. The stream ends when its token is "
        "revoked or expires."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"description": "the stream: `event: call` messages, `: keep-alive` comments",
              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        400: documented_problem("Last-Event-ID is neither 0 nor the id of one of this "
                                "user's events"),
        401: UNAUTHORIZED_ANSWER,
        429: documented_problem("too many open streams for this user",
                                {"Retry-After": {"schema": {"type": "string"}}}),
    },
)
async def events(
    services: ServicesDep,
    principal: CurrentPrincipal,
    last_event_id: Annotated[str | None, Header(
        description="the `id` of the last message received (`msg_` and 32 hexadecimal "
                    "digits), or `0` for the user's whole stream",
        examples=["msg_7c1f0e6a2b3d4c5e8f9a0b1c2d3e4f50"])] = None,
) -> StreamingResponse:
    broadcaster = services.broadcaster
    after = None
    if last_event_id is not None:
        after = await broadcaster.resume_point(principal.user_id, last_event_id)
    listener = broadcaster.open(principal.user_id, principal.token_id)
    return ListenerStream(broadcaster, listener, broadcaster.stream(listener, after))
