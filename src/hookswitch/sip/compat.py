"""Work-arounds for sippy quirks, applied once on the SIP thread before anything runs."""

from __future__ import annotations

from typing import Any

from sippy.SipURL import SipURL

_patched = False


def patch_sippy() -> None:
    """``transport=UDP`` in capitals (sipp sends it) breaks sippy's BYE path: lower-case it."""
    global _patched
    if _patched:
        return
    original = SipURL.setParams

    def set_params(self: Any, params: Any) -> None:
        original(self, params)
        if isinstance(self.transport, str):
            self.transport = self.transport.lower()

    SipURL.setParams = set_params
    _patched = True
