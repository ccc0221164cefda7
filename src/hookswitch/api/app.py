"""The HTTP side: health now, the Call Control API on top of it."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse


def create_app(is_ready: Callable[[], bool]) -> FastAPI:
    app = FastAPI(
        title="hookswitch",
        version="0.1.0",
        description="Self-hosted phone server with the Call Control API v3.",
    )

    @app.get("/healthz", tags=["operations"], summary="200 once SIP and HTTP are both up")
    async def healthz() -> JSONResponse:
        if is_ready():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "starting"}, status_code=503)

    return app
