"""The portal on the API's app: its pages and its versioned static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hookswitch.web import calls  # noqa: F401  (its pages are on the portal's router)
from hookswitch.web.routes import HERE, router
from hookswitch.web.session import PATH


def install(app: FastAPI) -> None:
    """The portal's pages and its versioned static files, on the API's app."""
    app.include_router(router)
    app.mount(PATH + "/static", StaticFiles(directory=str(HERE / "static")), name="portal")
