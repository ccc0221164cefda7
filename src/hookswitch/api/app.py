"""The HTTP side: health and the Call Control API v3."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST

from hookswitch.api import problems
from hookswitch.api.body_limit import BodyLimit
from hookswitch.api.routes import call_control, calls, cluster, events, oauth
from hookswitch.api.schemas import Health
from hookswitch.api.services import Services
from hookswitch.config import DEFAULT_MAX_BODY_BYTES

HttpApp = FastAPI  # what create_app returns, for those who only hold it (server.py)


def create_app(services: Services, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    # Swagger UI and ReDoc from the files of the fastapi-offline package: /docs works with
    # no Internet (FastAPI's own pages load them from a CDN).
    app = FastAPIOffline(
        title="hookswitch",
        version="0.1.0",
        description=(
            "Self-hosted phone server with the Call Control API v3: click-to-dial and "
            "hangup for the users of a tenant, authenticated with bearer tokens."
        ),
        # BodyLimit applies to every route, so every route may answer 413.
        responses={413: problems.documented_problem("the body is over server.max_body_bytes")},
    )
    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)
    app.state.services = services
    app.state.max_body_bytes = max_body_bytes
    problems.install(app)
    app.include_router(call_control.router)
    app.include_router(calls.router)
    app.include_router(events.router)
    app.include_router(oauth.router)
    app.include_router(cluster.router)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics",
             response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                              "description": "the text format (README, Metrics)"}})
    async def metrics() -> Response:
        return Response(services.metrics(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["operations"], summary="200 once SIP and HTTP are both up",
             response_model=Health,
             responses={200: {"description": "ready"},
                        503: {"model": Health, "description": "starting, stopping, or SIP down"}})
    async def healthz() -> JSONResponse:
        status = services.health()
        return JSONResponse({"status": status}, status_code=200 if status == "ok" else 503)

    _document_request_schemas(app)
    return app


def _document_request_schemas(app: FastAPI) -> None:
    """The body is read raw (several forms are accepted), so FastAPI does not see the
    request models: add them and the problem schema to the OpenAPI components. And every
    validation error is answered as a Problem (problems.install), not as FastAPI's
    HTTPValidationError: say so wherever FastAPI documented its own 422."""
    original = app.openapi

    def openapi() -> dict:  # type: ignore[type-arg]
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (*call_control.COMMANDS.values(), problems.Problem):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in model_schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = model_schema
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            answer = operation["responses"].get("422", {})
            if "HTTPValidationError" in str(answer.get("content")):
                operation["responses"]["422"] = problems.documented_problem(
                    "a parameter is missing or invalid, listed in `errors`")
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
