"""A user's registered devices, as the domain sees them (sip/registrar.py makes them)."""

from __future__ import annotations

from dataclasses import dataclass

from hookswitch.calls.ids import UserId


@dataclass(frozen=True, slots=True)
class Binding:
    user_id: UserId
    contact: str  # the Contact URI as the device sent it
    source: tuple[str, int]  # where the REGISTER came from: where INVITEs are sent
    expires_at: float  # wall-clock seconds, so it survives a restart via the database
    user_agent: str | None = None
    # When this server first saw the device registered (wall-clock seconds; refreshes keep
    # it): what the portal shows. None until the location has it.
    since: float | None = None
    # The Path header values of the REGISTER (RFC 3327), in order: requests to the device
    # go through them (a cluster's edge proxy). Empty when it registered directly.
    path: tuple[str, ...] = ()

    def alive(self, now: float) -> bool:
        return self.expires_at > now
