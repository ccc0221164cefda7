"""The request body cap (``server.max_body_bytes``), once for the whole app.

- A body that declares a ``Content-Length`` over the cap is answered 413 at once: before
  authentication, the rate limit or any read, so it costs no database look-up and no share
  of anyone's budget.
- A body without a length (chunked), or longer than it said, is counted as it is read and
  cut at the cap: the read raises a 413 ``HTTPException``, which ``problems.py`` answers
  (and which FastAPI lets through its own body parsing, should a route declare a body).

Why not FastAPI's own ``max_body_size`` (Starlette's ``RequestBodyLimitMiddleware``): for
a declared length over the cap it replaces whatever the app answers with a ``text/plain``
413, so the API could not answer problem+json there.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookswitch.api.errors import BodyTooLarge
from hookswitch.api.problems import problem_response

# ASCII digits only (str.isdigit() is true for "²"), and few enough for a machine integer.
_LENGTH = re.compile(r"[0-9]{1,18}")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declares_too_much(Headers(scope=scope)):
            await problem_response(BodyTooLarge(self.max_body_bytes))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413)  # answered by problems.py as body-too-large
            return message

        await self.app(scope, counted, send)

    def _declares_too_much(self, headers: Headers) -> bool:
        declared = headers.get("content-length")
        if declared is None:
            return False
        declared = declared.strip()
        if _LENGTH.fullmatch(declared):
            return int(declared) > self.max_body_bytes
        # More digits than any body we take; anything else is malformed, and the server
        # (uvicorn) refuses that before we see it. The count while reading applies anyway.
        return declared.isascii() and declared.isdigit()
