"""A real browser for the tests: Debian's headless ``chromium`` (``make browser`` installs
it with apt; Playwright cannot download its own browser here) driven by Playwright for
Python. Import the fixture into a conftest.py::

    from harness.browser import browser_page  # noqa: F401

``browser_page`` is a Playwright ``Page`` in a fresh Chromium profile (the test's own
``tmp_path``: no cookie or cache survives from another test), closed at teardown even when
the test fails. It uses Playwright's sync API, which refuses to run inside a running event
loop: use it from plain (``def``) tests, like the end-to-end tests that start processes.
Each test gets its own Chromium (about a second to start), so tests stay independent under
pytest-xdist.

Find controls by role and label (``page.get_by_role("button", name="Connect")``), as a
screen reader does: the labels are part of the contract.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
# Headless in a container as root, on loopback only: no sandbox (it needs user namespaces),
# no GPU, and none of Chromium's own traffic (updates, sync, field trials, QUIC probes).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1100, "height": 760}
# Screenshots for the documentation go here, and only when HOOKSWITCH_SCREENSHOTS=1, so an
# ordinary test run does not rewrite committed images.
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "img"
SCREENSHOTS_WANTED = "HOOKSWITCH_SCREENSHOTS"


@contextmanager
def chromium_page(profile: Path, *, timeout: float = 10.0) -> Iterator[Page]:
    """A page in headless Chromium with ``profile`` as its user-data folder; the browser
    is closed on the way out. ``timeout`` (s) bounds every wait of Playwright's."""
    from playwright.sync_api import sync_playwright  # here: only browser tests pay for it

    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} is missing: run `make browser` (apt-get install "
                             "chromium)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(timeout * 1000)
            yield page
        finally:
            context.close()


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Page]:
    """A page in a fresh headless Chromium, closed at teardown."""
    with chromium_page(tmp_path / "chromium-profile") as page:
        yield page


def save_screenshot(page: Page, path: Path) -> Path:
    """The whole page as a PNG at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def screenshot_for_docs(page: Page, name: str) -> Path | None:
    """Save ``docs/img/<name>.png`` when HOOKSWITCH_SCREENSHOTS=1; else do nothing."""
    if os.environ.get(SCREENSHOTS_WANTED) != "1":
        return None
    return save_screenshot(page, DOCS_IMAGES / f"{name}.png")
