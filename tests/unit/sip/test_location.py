"""The registrations the SIP side keeps: when a device was first seen survives refreshes
(the portal's "registered since")."""

from __future__ import annotations

import time
from dataclasses import replace

from hookswitch.calls.ids import UserId
from hookswitch.calls.registrations import Binding
from hookswitch.sip.location import Location

JANE = UserId("jane")


def binding(contact: str, expires_in: float = 60) -> Binding:
    return Binding(user_id=JANE, contact=contact, source=("127.0.0.1", 5070),
                   expires_at=time.time() + expires_in)


def test_a_refresh_keeps_since_and_a_new_device_gets_its_own() -> None:
    location = Location()
    before = time.time()
    location.put(binding("sip:210@127.0.0.1:5070"))
    [first] = location.devices(JANE)
    assert first.since is not None and before <= first.since <= time.time()
    location.put(binding("sip:210@127.0.0.1:5070", expires_in=120))  # a refresh
    [refreshed] = location.devices(JANE)
    assert refreshed.since == first.since and refreshed.expires_at > first.expires_at
    location.put(binding("sip:210@127.0.0.1:5072"))
    assert len(location.devices(JANE)) == 2
    location.remove(JANE, "sip:210@127.0.0.1:5070")
    anew = replace(binding("sip:210@127.0.0.1:5070"), since=first.since + 1)
    location.put(anew)  # registered anew, not a refresh: its own since
    assert {b.contact: b.since for b in location.devices(JANE)}[
        "sip:210@127.0.0.1:5070"] == first.since + 1
