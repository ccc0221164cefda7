"""The API documentation works with no Internet: /docs (Swagger UI) renders in a real
browser that may reach only hookswitch."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, expect

from harness.server import RunningServer


def test_swagger_ui_renders_from_hookswitch_alone(server: RunningServer,
                                                  browser_page: Page) -> None:
    here = urlsplit(server.http).netloc
    elsewhere: list[str] = []

    def only_hookswitch(route: Route) -> None:
        if urlsplit(route.request.url).netloc == here:
            route.continue_()
        else:  # a CDN, fonts, anything: refused, and remembered
            elsewhere.append(route.request.url)
            route.abort()

    browser_page.route("**/*", only_hookswitch)
    browser_page.goto(server.http + "/docs")
    expect(browser_page.get_by_text(re.compile(r"/v3/call_control/")).first).to_be_visible()
    expect(browser_page.get_by_role("heading", name=re.compile("hookswitch"))).to_be_visible()
    assert elsewhere == []
