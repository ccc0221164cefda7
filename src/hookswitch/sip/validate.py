"""What a request must be before hookswitch reads it.

sippy parses most headers only when they are first read, so a bad value used to surface
as an exception deep in the registrar or the call code (a 500 with a traceback). Every
header hookswitch reads is read here first, once; a request that fails is answered with
the status RFC 3261 gives for it (8.2, 16.3, 21.4), or dropped when no answer can be built
(sippy echoes To and answers to the top Via, so those two must be usable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hookswitch.sip.addresses import unusable_destination, valid_host, valid_port
from hookswitch.sip.wire import strict_number

SIP_SCHEMES = ("sip", "sips")
MAX_FORWARDS_LIMIT = 255  # RFC 3261 section 20.22


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer with ``status`` and ``reason`` (the reason phrase says what was wrong)."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Drop:
    """No answer can be built or delivered: drop the request and log ``reason``."""

    reason: str


Problem = Refuse | Drop


def check_request(req: Any) -> Problem | None:
    """The first problem found with ``req``, or None when it is fit to be handled."""
    problem = _answerable(req)
    if problem is not None:
        return problem
    for check in _CHECKS:
        try:
            problem = check(req)
        except Exception:  # a header no check expected to fail: still the sender's fault
            problem = Refuse(400, "Bad Request")
        if problem is not None:
            return problem
    return None


def _answerable(req: Any) -> Problem | None:
    try:
        destination = req.getHFBody("via").getTAddr()
        req.getHFBody("to").getUrl()
    except Exception:
        return Drop("unreadable Via or To")
    reason = unusable_destination(destination)
    return Drop(f"the top Via cannot be answered: {reason}") if reason else None


def _version(req: Any) -> Problem | None:
    if str(req.sipver).upper() != "SIP/2.0":
        return Refuse(505, "Version Not Supported")
    return None


def _via(req: Any) -> Problem | None:
    via = req.getHFBody("via")
    if not valid_host(via.hostname) or not (via.port is None or valid_port(via.port)):
        return Refuse(400, "Bad Via: a host and a port from 1 to 65535 expected")
    return None


def _cseq(req: Any) -> Problem | None:
    if req.getHFBody("cseq").getCSeqMethod() != req.getMethod():
        return Refuse(400, "CSeq Method Does Not Match The Request")
    return None


def _max_forwards(req: Any) -> Problem | None:
    if req.countHFs("max-forwards") == 0:
        return None  # RFC 3261 has the client send it, not the server refuse without it
    try:
        hops = req.getHFBody("max-forwards").getNum()
    except Exception:
        hops = -1
    if not 0 <= hops <= MAX_FORWARDS_LIMIT:
        return Refuse(400, "Bad Max-Forwards: a number from 0 to 255 expected")
    # An INVITE goes on to a callee as a new leg; REGISTER and OPTIONS end here
    # (RFC 3261 section 16.3, step 2).
    if hops == 0 and req.getMethod() == "INVITE":
        return Refuse(483, "Too Many Hops")
    return None


def _addresses(req: Any) -> Problem | None:
    if not _sip_uri(req.getRURI()):
        return Refuse(400, "Bad Request-URI: a sip or sips URI with a host expected")
    for name, label in (("from", "From"), ("to", "To")):
        if not _sip_uri(req.getHFBody(name).getUrl()):
            return Refuse(400, f"Bad {label}: a sip or sips URI with a host expected")
    return None


def _contacts(req: Any) -> Problem | None:
    if req.countHFs("contact") == 0:
        return None
    try:
        contacts = req.getHFBodys("contact")
    except Exception:
        contacts = None  # not even an address: no scheme, no angle brackets that close
    for contact in contacts or [None]:
        if contact is not None and contact.asterisk:
            continue
        if contact is None or not _sip_uri(contact.getUrl()):
            return Refuse(400, "Bad Contact: a sip or sips URI with a host expected")
        if not _port_ok(contact.getUrl()):
            return Refuse(400, "Bad Contact: port must be from 1 to 65535")
        expires = contact.address.params.get("expires")
        if expires is not None and not _number_ok(expires, "expires"):
            return Refuse(400, "Bad Contact: expires must be a number of seconds")
    return None


def _expires(req: Any) -> Problem | None:
    if req.countHFs("expires") == 0:
        return None
    try:
        req.getHFBody("expires").getNum()
    except Exception:
        return Refuse(400, "Bad Expires: a number of seconds expected")
    return None


def _path(req: Any) -> Problem | None:
    # A REGISTER's Path (RFC 3327) is where requests to the device will be sent.
    if req.getMethod() != "REGISTER" or req.countHFs("path") == 0:
        return None
    try:
        paths = req.getHFBodys("path")
    except Exception:
        paths = [None]
    for path in paths:
        if path is None or not _sip_uri(path.getUrl()) or not _port_ok(path.getUrl()):
            return Refuse(400, "Bad Path: a sip or sips URI with a host and port expected")
    return None


def _sip_uri(url: Any) -> bool:
    return url.scheme in SIP_SCHEMES and valid_host(url.host)


def _port_ok(url: Any) -> bool:
    return url.port is None or valid_port(url.port)


def _number_ok(text: str, name: str) -> bool:
    try:
        strict_number(text, name)
    except Exception:
        return False
    return True


_CHECKS: tuple[Callable[[Any], Problem | None], ...] = (
    _version,
    _via,
    _cseq,
    _max_forwards,
    _addresses,
    _contacts,
    _expires,
    _path,
)
