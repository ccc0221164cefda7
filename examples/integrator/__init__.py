"""An example integrator: a CRM's side of a hookswitch integration, end to end.

    .venv/bin/python -m examples.integrator        # from the repository's root

``settings.py`` (flags, environment, demo defaults), ``store.py`` (what it remembers, in
memory), ``client.py`` (its calls to hookswitch: refresh, revoke, click-to-dial),
``app.py`` (the routes hookswitch and the browser call) and ``pages.py`` (the HTML).
"""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
