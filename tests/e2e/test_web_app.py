"""The user web app in a real browser (Chromium, Playwright) against ``hookswitch serve``,
with real phones: Jane (210) on baresip, answered by hand; John (200) and Bob (220) sipp
UASes that answer and log every re-INVITE.

The page is never reloaded while a call changes: its rows follow the calls through the
portal's stream. The test measures how long after a SIP state change the row shows it: each
row carries the leg's last change time (``data-changed-us``, the server's clock) and a
MutationObserver in the page notes when a row's state first shows (the browser's clock: the
same machine)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from harness import free_udp_port, sdp_direction
from harness.browser import screenshot_for_docs
from harness.server import PASSWORDS, TENANT, WEB_PASSWORDS, RunningServer
from tests.e2e.test_call_transfer import sipp_phone

if TYPE_CHECKING:
    from playwright.sync_api import Page

# Notes each row's state the first time it shows, with the browser's clock.
OBSERVE_ROWS = """
window.__rowChanges = [];
document.addEventListener("DOMContentLoaded", () => {
  const shown = new Map();
  const scan = (record) => {
    const now = new Set();
    for (const row of document.querySelectorAll("li.call[data-leg]")) {
      const key = row.dataset.leg, state = row.dataset.state;
      now.add(key);
      if (shown.get(key) === state) continue;
      shown.set(key, state);
      if (record) window.__rowChanges.push({leg: key, state: state, seen_ms: Date.now(),
                                            changed_us: Number(row.dataset.changedUs)});
    }
    for (const key of [...shown.keys()].filter((key) => !now.has(key))) {
      shown.delete(key);  // gone: the leg ended (its time is the server's HANGUP change)
      if (record) window.__rowChanges.push({leg: key, state: "HANGUP", seen_ms: Date.now(),
                                            changed_us: null});
    }
  };
  scan(false);  // what the page came with is not a change seen live
  new MutationObserver(() => scan(true)).observe(document.body,
                                                 {childList: true, subtree: true});
});
"""


class Latencies:
    """Milliseconds from a leg's state change (server) to its row showing it (browser)."""

    def __init__(self) -> None:
        self.samples: list[tuple[str, float]] = []

    def collect(self, page: Page, server: RunningServer) -> None:
        """Take what the page noted (before it is left: a new page starts afresh); a row
        gone is measured from its leg's HANGUP, as recorded."""
        changes: list[dict[str, Any]] = page.evaluate("window.__rowChanges.splice(0)")
        for change in changes:
            if change["changed_us"] is None:
                [ended] = server.query("SELECT at_us FROM leg_changes WHERE leg_id = :leg "
                                       "AND state = 'HANGUP'", leg=change["leg"])
                change["changed_us"] = ended["at_us"]
            self.samples.append((change["state"],
                                 change["seen_ms"] - change["changed_us"] / 1000))

    def report(self) -> tuple[float, float]:
        values = sorted(ms for _, ms in self.samples)
        p50 = statistics.median(values)
        p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
        print(f"\nweb app row latency over {len(values)} changes: p50 {p50:.1f} ms, "
              f"p99 {p99:.1f} ms; {[(s, round(ms, 1)) for s, ms in self.samples]}")
        return p50, p99


def hang_up_by_api(server: RunningServer, extension: str, token: str) -> None:
    answer = httpx.post(server.http + "/v3/call_control/", timeout=10,
                        headers={"Authorization": f"Bearer {token}"},
                        json={"command": "hangup",
                              "user": {"tenant_id": TENANT, "user_extension": extension},
                              "payload": {"call_leg_id": server.leg_for(extension)["id"]}})
    assert answer.status_code == 200, answer.text


def test_the_web_app_calls_holds_transfers_hangs_up_and_lists_history_live(
    server: RunningServer, phone, make_sipp, browser_page: Page,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    jane = phone("210")  # answered by hand
    john = sipp_phone(server, make_sipp, "200", "uas_answer.xml", tmp_path)
    bob = sipp_phone(server, make_sipp, "220", "uas_answer.xml", tmp_path)
    page = browser_page
    page.add_init_script(OBSERVE_ROWS)
    latencies = Latencies()
    # A script or style the CSP refused, or a script's exception (not a 4xx answer: the
    # refusals below are meant, and there is no favicon).
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error"
            and not message.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    # Log in: the Calls page, with Jane's phone registered.
    page.goto(server.http + "/portal/")
    page.get_by_label("User").fill("210")
    page.get_by_label("Password").fill(WEB_PASSWORDS["210"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Calls")).to_be_visible()
    expect(page.locator(".phones")).to_contain_text("Registered: 1 device, since")
    status = page.get_by_role("status")
    expect(status).to_have_text("No call in progress.")
    row = page.locator("#live li.call")
    state = row.locator(".state")

    # A destination that is no number: a message in the page, read out, no error page.
    page.get_by_label("Destination").fill("nobody!")
    page.get_by_label("Destination").press("Enter")  # the keyboard works as the button
    expect(page.locator("#calls-message .error")).to_contain_text("destination")
    expect(status).to_contain_text("destination")

    # Call 200: Jane's phone rings first (the row: ringing), she picks up, John answers.
    page.get_by_label("Destination").fill("200")
    page.get_by_role("button", name="Call").click()
    expect(page.locator("#calls-message .error")).to_have_count(0)
    expect(state).to_have_text("Ringing")
    expect(row).to_contain_text("John Doe (200)")
    jane.incoming_call()
    jane.answer()
    expect(state).to_have_text("Active")
    expect(status).to_have_text("Outgoing call, John Doe (200): Active")
    screenshot_for_docs(page, "web-app-calls")

    # Hold: John's phone is re-invited sendonly; Resume: sendrecv again.
    row.get_by_role("button", name="Hold").click()
    expect(state).to_have_text("On hold")
    assert sdp_direction(john.wait_received("INVITE", count=2)[-1]) == "sendonly"
    row.get_by_role("button", name="Resume").click()
    expect(state).to_have_text("Active")
    assert sdp_direction(john.wait_received("INVITE", count=3)[-1]) == "sendrecv"

    # A phone-sized screen: nothing sticks out sideways.
    page.set_viewport_size({"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size({"width": 1100, "height": 760})

    # Transfer to 220: Jane's leg ends, Bob's phone rings and answers; John and Bob talk,
    # and their legs never show on Jane's page.
    row.get_by_label("Transfer to").fill("220")
    row.get_by_role("button", name="Transfer").click()
    expect(row).to_have_count(0)
    jane.wait_event("CALL_CLOSED")
    bob.wait_received("INVITE")
    server.wait_states("220", ["RINGING", "ACTIVE"])
    server.wait_states("210", ["RINGING", "ACTIVE", "HELD", "ACTIVE", "HANGUP(transferred)"])
    expect(status).to_have_text("No call in progress.")
    hang_up_by_api(server, "200", "tok-john")
    assert john.wait(15) == 0, john.diagnostics()
    assert bob.wait(15) == 0, bob.diagnostics()

    # An incoming call (John's number, from another phone) shows live; Hang up ends it.
    seen = len(jane.events)
    caller = make_sipp("uac_call_remote_bye.xml", local_port=free_udp_port(),
                       remote=server.sip, service="210", auth=("200", PASSWORDS["200"]))
    expect(state).to_have_text("Ringing")
    expect(row).to_contain_text("Incoming")
    jane.incoming_call(after=seen)
    jane.answer()
    expect(state).to_have_text("Active")
    row.get_by_role("button", name="Hang up").click()
    expect(row).to_have_count(0)
    jane.wait_event("CALL_CLOSED", after=seen)
    assert caller.wait(15) == 0, caller.diagnostics()
    latencies.collect(page, server)

    # History: both calls, newest first; Call on a row dials its number again.
    page.get_by_role("link", name="History").click()
    history = page.locator("table.history tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("Incoming")
    expect(history.nth(1)).to_contain_text("Transferred")
    screenshot_for_docs(page, "web-app-history")
    seen = len(jane.events)
    history.nth(0).get_by_role("button", name="Call").click()
    expect(page.get_by_role("heading", name="Calls")).to_be_visible()
    expect(state).to_have_text("Ringing")
    jane.incoming_call(after=seen)
    row.get_by_role("button", name="Hang up").click()  # while it rings: CANCEL
    expect(row).to_have_count(0)
    jane.wait_event("CALL_CLOSED", after=seen)
    latencies.collect(page, server)

    # A form posted without the session's CSRF token is refused; then log out.
    refused = page.request.post(server.http + "/portal/calls/dial",
                                form={"destination": "200"}, max_redirects=0)
    assert refused.status == 403
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto(server.http + "/portal/history")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    assert errors == []
    _, p99 = latencies.report()
    # Each change showed once, in order: no stale view flickered in between (the last
    # call's RINGING was there when the page loaded).
    assert [state for state, _ in latencies.samples] == [
        "RINGING", "ACTIVE", "HELD", "ACTIVE", "HANGUP",  # called, held, transferred
        "RINGING", "ACTIVE", "HANGUP",  # the incoming call, hung up
        "HANGUP"]  # the call from History, hung up while it rang
    assert p99 < 1000, "a row took over a second to follow its call"
