"""The example integrator's one page, as server-rendered HTML: plain forms, no JavaScript,
nothing from another site. Every value from outside goes through ``escape``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from .settings import Settings
from .store import Connection, Ended, UserKey

# Why a connection ended, for people: hookswitch's deactivation reasons, and this app's.
REASONS = {
    "user": "the user disconnected it in the hookswitch portal",
    "admin": "a hookswitch administrator ended it",
    "integrator": "this app disconnected it (the refresh token was revoked)",
    "refresh_token_reuse": "hookswitch saw an old refresh token used again and revoked "
                           "every token of the connection (a stolen token?)",
    "user_removed": "the user no longer exists on hookswitch",
    "integration_removed": "the integration was removed from hookswitch",
    "invalid_grant": "hookswitch refused the refresh token (invalid_grant): the connection "
                     "is gone",
    "activation_failed": "hookswitch gave up on the activation after this app had answered",
    "revoke_failed": "this app forgot it, but hookswitch could not be told: its access "
                     "token works until it expires",
}

# What hookswitch's ?error= on the way back means.
RETURN_ERRORS = {
    "access_denied": "You chose Cancel on hookswitch: nothing was connected.",
    "activation_failed": "hookswitch could not hand the connection to this app (its call to "
                         "/telephony/activate failed). Nothing was connected; try Connect "
                         "again.",
}

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f4f6f9; }
header { background: #23395d; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; opacity: .85; }
main { padding: 8px 28px 28px; max-width: 1100px; }
section { background: #fff; border: 1px solid #dde3ea; border-radius: 8px;
          padding: 4px 18px 14px; margin-top: 16px; }
h2 { font-size: 17px; } h3 { font-size: 15px; margin-bottom: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #eef1f5;
         vertical-align: top; }
th { font-size: 13px; color: #5a6472; font-weight: 600; }
form.inline { display: inline-block; margin: 0 6px 4px 0; }
input[name=destination] { width: 11em; }
button { font: inherit; padding: 3px 12px; border-radius: 5px; border: 1px solid #8a97a8;
         background: #fff; cursor: pointer; }
button.primary { background: #2f6fde; border-color: #2f6fde; color: #fff; padding: 6px 18px; }
.message { padding: 10px 14px; border-radius: 6px; margin-top: 16px; }
.message.ok { background: #e3f4e6; border: 1px solid #9fd3a8; }
.message.error { background: #fbe7e7; border: 1px solid #e8a3a3; }
.notice { color: #4a5563; font-size: 13px; }
code, .muted { color: #5a6472; }
header code { color: #d6e4ff; }
"""


@dataclass(frozen=True, slots=True)
class Message:
    """A line at the top of the page: ``ok`` or ``error``."""

    kind: str
    text: str


def return_message(error: str | None, user: UserKey | None) -> Message | None:
    """What a browser back from hookswitch is told."""
    if error is not None:
        text = RETURN_ERRORS.get(error, f"hookswitch sent you back with error={error}.")
        return Message("error", text)
    if user is not None:
        return Message("ok", f"Connected: extension {user[1]} of tenant {user[0]}.")
    return None


def home(*, settings: Settings, csrf: str, message: Message | None,
         connections: Sequence[Connection], ended: Sequence[Ended],
         events: Mapping[UserKey, Sequence[Mapping[str, Any]]], now: float) -> str:
    parts = [
        _message(message),
        _connect_section(csrf),
        _connections_section(connections, csrf, now),
        _events_section(events),
        _ended_section(ended),
    ]
    return _layout(settings, "".join(parts))


def _layout(settings: Settings, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme CRM · telephony</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>Acme CRM · telephony</h1>
<p>Example integrator of hookswitch at <code>{escape(settings.hookswitch_url)}</code>,
integration <code>{escape(settings.slug)}</code></p>
</header>
<main>
{body}
</main>
</body>
</html>
"""


def _message(message: Message | None) -> str:
    if message is None:
        return ""
    return f'<p class="message {message.kind}" role="status">{escape(message.text)}</p>\n'


def _csrf_field(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def _button_form(action: str, label: str, csrf: str, css_class: str = "") -> str:
    button_class = f' class="{css_class}"' if css_class else ""
    return (f'<form class="inline" method="post" action="{escape(action)}">{_csrf_field(csrf)}'
            f'<button type="submit"{button_class}>{escape(label)}</button></form>')


def _connect_section(csrf: str) -> str:
    return f"""<section aria-labelledby="connect-title">
<h2 id="connect-title">Connect a phone user</h2>
<p>Connect takes you to hookswitch: log in with your extension and web password, read what
Acme CRM will be allowed to do, and click <b>Subscribe</b>. hookswitch then hands this app
your tokens directly and sends you back here.</p>
{_button_form("/connect", "Connect", csrf, "primary")}
</section>
"""


def _connections_section(connections: Sequence[Connection], csrf: str, now: float) -> str:
    if not connections:
        rows = '<p class="muted">No user is connected yet.</p>'
    else:
        rows = ("<table><thead><tr><th>User</th><th>Tenant</th><th>Access token</th>"
                "<th>Actions</th></tr></thead><tbody>"
                + "".join(_connection_row(c, csrf, now) for c in connections)
                + "</tbody></table>")
    return f"""<section aria-labelledby="connections-title">
<h2 id="connections-title">Connected users</h2>
{rows}
</section>
"""


def _connection_row(connection: Connection, csrf: str, now: float) -> str:
    base = (f"/connections/{quote(connection.tenant_id, safe='')}/"
            f"{quote(connection.user_extension, safe='')}")
    call_form = (
        f'<form class="inline" method="post" action="{escape(base)}/call">{_csrf_field(csrf)}'
        '<label>Destination <input name="destination" required '
        'placeholder="200 or +3228990200"></label> '
        '<button type="submit">Call</button></form>')
    notice = (f'<div class="notice" role="status">{escape(connection.notice)}</div>'
              if connection.notice else "")
    return (
        f"<tr><td><b>{escape(connection.user_extension)}</b></td>"
        f"<td><code>{escape(connection.tenant_id)}</code></td>"
        f"<td>{escape(_expiry(connection.expires_at, now))}<br>"
        f'<span class="muted">refreshed {connection.refreshes} times · '
        f"scope {escape(connection.scope)}</span></td>"
        f"<td>{call_form}{_button_form(base + '/refresh', 'Refresh now', csrf)}"
        f"{_button_form(base + '/disconnect', 'Disconnect', csrf)}{notice}</td></tr>")


def _expiry(expires_at: float, now: float) -> str:
    left = int(expires_at - now)
    at = time.strftime("%H:%M:%S", time.localtime(expires_at))
    if left <= 0:
        return f"expired at {at} (refreshed on the next use)"
    return f"expires in {left // 60} min {left % 60} s (at {at})"


def _events_section(events: Mapping[UserKey, Sequence[Mapping[str, Any]]]) -> str:
    if not events:
        body = '<p class="muted">No event yet: place a call.</p>'
    else:
        body = "".join(_user_events(user, kept) for user, kept in events.items())
    return f"""<section aria-labelledby="events-title">
<h2 id="events-title">Recent events</h2>
<p class="muted">Newest first; reload the page to see new ones.</p>
{body}
</section>
"""


def _user_events(user: UserKey, events: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(_event_row(event) for event in events)
    return (f"<h3>{escape(user[1])} <span class=\"muted\">· {escape(user[0])}</span></h3>"
            "<table><thead><tr><th>Time</th><th>Type</th><th>What</th><th>Direction</th>"
            f"<th>From → to</th><th>Leg</th></tr></thead><tbody>{rows}</tbody></table>")


def _event_row(event: Mapping[str, Any]) -> str:
    def field(name: str) -> str:
        return str(event.get(name, ""))

    kind = field("type") or "call"  # tenant webhooks' events carry no type
    if kind == "summary":
        answered = "answered" if field("answered_at") else "not answered"
        what = f"{answered}, {field('duration')} s, {field('reason')}"
    else:
        what = field("state") + (f" ({field('reason')})" if field("reason") else "")
    parties = (f"{_party(field('caller_name'), field('caller_number'))} → "
               f"{_party(field('callee_name'), field('callee_number'))}")
    cells = [_event_time(field("timestamp")), kind, what, field("direction"), parties,
             field("id")[:8]]
    return "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>"


def _party(name: str, number: str) -> str:
    return number if not name or name == number else f"{name} ({number})"


def _event_time(timestamp: str) -> str:
    """Epoch microseconds (a string, as in every event) as local time."""
    try:
        return time.strftime("%H:%M:%S", time.localtime(int(timestamp) / 1_000_000))
    except (ValueError, OverflowError, OSError):
        return timestamp


def _ended_section(ended: Sequence[Ended]) -> str:
    if not ended:
        return ""
    rows = "".join(
        f"<tr><td><b>{escape(e.user_extension)}</b></td><td><code>{escape(e.tenant_id)}"
        f"</code></td><td><code>{escape(e.reason)}</code>: "
        f"{escape(REASONS.get(e.reason, 'ended'))}</td>"
        f"<td>{time.strftime('%H:%M:%S', time.localtime(e.at))}</td></tr>"
        for e in ended)
    return f"""<section aria-labelledby="ended-title">
<h2 id="ended-title">Ended connections</h2>
<table><thead><tr><th>User</th><th>Tenant</th><th>Why</th><th>When</th></tr></thead>
<tbody>{rows}</tbody></table>
</section>
"""
