"""``python -m examples.integrator [--help]``: serve the example integrator (from the
repository's root, with hookswitch's .venv)."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

from .app import create_app
from .settings import parse_settings


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv, os.environ)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    print(f"example integrator on http://{settings.listen}/ for hookswitch at "
          f"{settings.hookswitch_url}, integration {settings.slug}", file=sys.stderr,
          flush=True)
    # Only the request line is logged; this app puts no token in a URL.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="info")


if __name__ == "__main__":
    main()
