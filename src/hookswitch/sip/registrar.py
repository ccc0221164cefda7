"""REGISTER handling (RFC 3261 section 10): bindings per user, several devices each."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, assert_never

from sippy.SipContact import SipContact
from sippy.SipHeader import SipHeader

from hookswitch.calls.registrations import Binding
from hookswitch.sip.auth import Authenticated, Challenge, Refused, authenticate, challenge_headers
from hookswitch.sip.location import Location

MIN_EXPIRES = 60
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 3600


class Registrar:
    def __init__(
        self,
        directory_source: Callable[[], Any],
        location: Location,
        on_change: Callable[[str, Binding | None, str | None], object],
        algorithms: tuple[str, ...],
    ) -> None:
        self.algorithms = algorithms
        self._directory = directory_source
        self.location = location
        # on_change(user_id, binding or None, contact removed) lets the server persist.
        self._on_change = on_change

    def handle(self, req: Any, source: tuple[str, int],
               path: tuple[str, ...] = ()) -> tuple[Any, bool]:
        """Answer a REGISTER from ``source`` (the phone's address, behind an edge too) that
        came over ``path`` (its trusted Path values, RFC 3327); the flag tells the caller
        whether authentication failed."""
        verdict = authenticate(self._directory(), req, "to")
        match verdict:
            case Challenge(realm=realm):
                resp = req.genResponse(401, "Unauthorized")
                resp.appendHeaders(challenge_headers(realm, self.algorithms))
                return resp, False
            case Refused():
                return req.genResponse(403, "Forbidden"), True
            case Authenticated(user=user):
                return self._update(req, user.id, source, path), False
            case _:
                assert_never(verdict)

    def _update(self, req: Any, user_id: Any, source: tuple[str, int],
                path: tuple[str, ...]) -> Any:
        # Expires, Contact and its expires parameter were checked by validate.check_request.
        default = DEFAULT_EXPIRES
        if req.countHFs("expires") > 0:
            default = int(req.getHFBody("expires").getNum())
        contacts = req.getHFBodys("contact") if req.countHFs("contact") > 0 else []
        user_agent = req.getHFBody("user-agent").name if req.countHFs("user-agent") else None
        for contact in contacts:
            if contact.asterisk:
                if default != 0:
                    return req.genResponse(400, "Wildcard Contact Needs Expires 0")
                self.location.remove(user_id)
                self._on_change(user_id, None, None)
                continue
            url = contact.getUrl()
            uri = str(url)
            expires = default
            if contact.address.params.get("expires") is not None:
                expires = int(contact.address.params["expires"])
            if expires == 0:
                self.location.remove(user_id, uri)
                self._on_change(user_id, None, uri)
                continue
            if expires < MIN_EXPIRES:
                resp = req.genResponse(423, "Interval Too Brief")
                resp.appendHeader(SipHeader(name="min-expires", bodys=str(MIN_EXPIRES)))
                return resp
            expires = min(expires, MAX_EXPIRES)
            binding = Binding(
                user_id=user_id,
                contact=uri,
                source=source,
                expires_at=time.time() + expires,
                user_agent=user_agent,
                path=path,
            )
            self.location.put(binding)
            self._on_change(user_id, binding, None)
        resp = req.genResponse(200, "OK")
        now = time.time()
        for binding in self.location.devices(user_id, now):
            remaining = int(binding.expires_at - now)
            contact = SipContact(body=f"<{binding.contact}>;expires={remaining}")
            resp.appendHeader(SipHeader(name="contact", body=contact))
        # RFC 3327 section 5.3: the registrar returns the Path it stored, so the phone
        # (and the edge) can see the route requests to it will take.
        for value in path:
            resp.appendHeader(SipHeader(name="path", bodys=value))
        return resp
