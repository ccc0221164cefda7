"""The one place where sippy's events are read and turned into our terms: the named
inputs of the bridge's state machine (``sip/bridge_state.py``)."""

from __future__ import annotations

from typing import Any

from sippy.CCEvents import (
    CCEventConnect,
    CCEventDisconnect,
    CCEventFail,
    CCEventPreConnect,
    CCEventRing,
    CCEventTry,
    CCEventUpdate,
)

from hookswitch.sip.bridge_state import (
    Answered,
    BridgeInput,
    Failed,
    HungUp,
    Peer,
    Referred,
    Reoffered,
    Ringing,
)
from hookswitch.sip.sdp import sdp_holds


def bridge_input(event: Any, peer: Peer, at_us: int,
                 established: bool = False) -> BridgeInput | None:
    """What a sippy UA's event means for the bridge; None for events it does not use
    (INFO, DTMF and the like). ``established``: the UA's dialog is up after the event (a
    failure then is a refused re-INVITE, 488 or 491, not the end of the call)."""
    match event:
        case CCEventFail() if established:
            return Answered(at_us=at_us, peer=peer, refused=True)
        case CCEventRing():
            return Ringing(at_us=at_us, peer=peer)
        case CCEventPreConnect():  # a 200 carrying the peer's offer (we sent none)
            return Answered(at_us=at_us, peer=peer, late_offer=True)
        case CCEventConnect():
            return Answered(at_us=at_us, peer=peer)
        case CCEventFail():
            return Failed(at_us=at_us, peer=peer, status=failure_status(event))
        case CCEventDisconnect() if (destination := refer_target(event)) is not None:
            return Referred(at_us=at_us, peer=peer, destination=destination)
        case CCEventDisconnect():
            return HungUp(at_us=at_us, peer=peer)
        case CCEventUpdate():
            return Reoffered(at_us=at_us, peer=peer, holds=sdp_holds(event_body(event)))
    return None


def refer_target(event: Any) -> str | None:
    """The user part of a REFER's Refer-To (sippy answers the REFER 202, hangs the phone
    up and reports a CCEventDisconnect carrying the Refer-To); None for a plain hang-up or
    a Refer-To with no user part."""
    refer_to = event.getData()
    if refer_to is None or not hasattr(refer_to, "getUrl"):
        return None
    try:
        if not refer_to.parsed:
            refer_to.parse()
        username = refer_to.getUrl().username
    except Exception:  # an unreadable Refer-To: the phone has left all the same
        return None
    return username if isinstance(username, str) and username else None


def is_established(ua: Any) -> bool:
    """The UA's dialog is up (sippy's Connected and Updating states say so)."""
    return bool(getattr(ua.state, "connected", False)) if ua.state is not None else False


def is_new_call(event: Any) -> bool:
    """The first event of an incoming INVITE's UA."""
    return isinstance(event, CCEventTry)


def offer_of(event: Any) -> Any:
    """The SDP of an incoming INVITE (sippy: CCEventTry data = (call-id, cli, cld, body,
    auth, caller name))."""
    return event.getData()[3]


def failure_status(event: Any) -> int:
    """The SIP status a CCEventFail carries (sippy puts (code, reason) in its data)."""
    if isinstance(event, CCEventFail):
        data = event.getData()
        if data and isinstance(data[0], int):
            return data[0]
    return 500


def event_body(event: Any) -> Any:
    """The SDP body of a ring/connect/update event, if any (sippy: data = (code, reason, body))."""
    data = event.getData()
    if isinstance(data, tuple) and len(data) >= 3:
        return data[2]
    if isinstance(event, CCEventUpdate):
        return data
    return None


def with_body(event: Any, body: Any) -> Any:
    """``event`` carrying ``body`` instead (the same event when it is the same body)."""
    if body is event_body(event):
        return event
    data = event.getData()
    event.data = (*data[:2], body, *data[3:]) if isinstance(data, tuple) else body
    return event
