"""sippy's events become the bridge's named inputs here, and only here."""

from __future__ import annotations

import pytest
from sippy.CCEvents import (
    CCEventConnect,
    CCEventDisconnect,
    CCEventFail,
    CCEventInfo,
    CCEventPreConnect,
    CCEventRing,
    CCEventTry,
    CCEventUpdate,
)
from sippy.MsgBody import MsgBody
from sippy.SipReferTo import SipReferTo

from hookswitch.sip.bridge_state import (
    CALLER,
    Answered,
    Failed,
    HungUp,
    Peer,
    Referred,
    Reoffered,
    Ringing,
    Role,
)
from hookswitch.sip.translate import (
    bridge_input,
    event_body,
    failure_status,
    is_new_call,
    offer_of,
)

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
      "m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n"
HOLD = SDP.replace("a=sendrecv", "a=sendonly")
FORK = Peer(Role.FORK, 1)


@pytest.mark.parametrize(("event", "expected"), [
    (CCEventRing((180, "Ringing", None)), Ringing(at_us=7, peer=FORK)),
    (CCEventConnect((200, "OK", MsgBody(SDP))), Answered(at_us=7, peer=FORK)),
    (CCEventPreConnect((200, "OK", MsgBody(SDP))),
     Answered(at_us=7, peer=FORK, late_offer=True)),
    (CCEventFail((486, "Busy Here")), Failed(at_us=7, peer=FORK, status=486)),
    (CCEventDisconnect(), HungUp(at_us=7, peer=FORK)),
    (CCEventUpdate(MsgBody(HOLD)), Reoffered(at_us=7, peer=FORK, holds=True)),
    (CCEventUpdate(MsgBody(SDP)), Reoffered(at_us=7, peer=FORK, holds=False)),
], ids=["ring", "connect", "late-offer", "fail", "disconnect", "hold", "resume"])
def test_each_event_has_its_named_input(event: object, expected: object) -> None:
    assert bridge_input(event, FORK, 7) == expected


def test_a_failure_on_an_established_dialog_is_a_refused_reinvite() -> None:
    assert bridge_input(CCEventFail((488, "Not Acceptable Here")), FORK, 7,
                        established=True) == Answered(at_us=7, peer=FORK, refused=True)


def test_events_the_bridge_does_not_use_are_none() -> None:
    assert bridge_input(CCEventInfo(None), CALLER, 7) is None


def test_a_failure_without_a_status_counts_as_500() -> None:
    assert failure_status(CCEventFail(("not a number", "?"))) == 500
    assert failure_status(CCEventDisconnect()) == 500


def test_the_new_call_and_its_offer() -> None:
    offer = MsgBody(SDP)
    event = CCEventTry(("call-id", "210", "200", offer, None, "Jane Doe"))
    assert is_new_call(event) and not is_new_call(CCEventRing())
    assert offer_of(event) is offer


def test_bodies_of_answers_and_re_invites() -> None:
    body = MsgBody(SDP)
    assert event_body(CCEventConnect((200, "OK", body))) is body
    assert event_body(CCEventUpdate(body)) is body
    assert event_body(CCEventDisconnect()) is None


@pytest.mark.parametrize(("refer_to", "expected"), [
    ("<sip:220@127.0.0.1:5060>", Referred(at_us=7, peer=FORK, destination="220")),
    ("sip:+32470123456@pbx.test;user=phone",
     Referred(at_us=7, peer=FORK, destination="+32470123456")),
    ("<sip:127.0.0.1>", HungUp(at_us=7, peer=FORK)),  # nobody named: just a hang-up
    ("<not a uri>", HungUp(at_us=7, peer=FORK)),
])
def test_a_refer_is_a_transfer_to_the_user_part_of_its_refer_to(
        refer_to: str, expected: object) -> None:
    event = CCEventDisconnect(SipReferTo(body=refer_to))
    assert bridge_input(event, FORK, 7, established=True) == expected
