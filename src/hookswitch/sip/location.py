"""Registrations: which devices each user has, shared by the SIP thread and the API.

Written only from the SIP thread (REGISTER); read from any thread (ringing a user, the
API's "has the user a device?" check), hence the lock. Expired bindings are ignored on
read and dropped on the next write for that user.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from hookswitch.calls.ids import UserId
from hookswitch.calls.registrations import Binding


class Location:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bindings: dict[UserId, dict[str, Binding]] = {}

    def put(self, binding: Binding) -> None:
        with self._lock:
            now = time.time()
            devices = self._bindings.setdefault(binding.user_id, {})
            for contact in [c for c, b in devices.items() if not b.alive(now)]:
                del devices[contact]
            known = devices.get(binding.contact)
            since = known.since if known is not None else binding.since
            devices[binding.contact] = replace(binding, since=since or now)

    def remove(self, user_id: UserId, contact: str | None = None) -> None:
        with self._lock:
            if contact is None:
                self._bindings.pop(user_id, None)
            else:
                self._bindings.get(user_id, {}).pop(contact, None)

    def devices(self, user_id: UserId, now: float | None = None) -> list[Binding]:
        now = time.time() if now is None else now
        with self._lock:
            return [b for b in self._bindings.get(user_id, {}).values() if b.alive(now)]

    def has_devices(self, user_id: UserId) -> bool:
        return bool(self.devices(user_id))

    def device_count(self) -> int:
        """Registered devices of every user, now (the metrics' gauge)."""
        now = time.time()
        with self._lock:
            return sum(b.alive(now) for devices in self._bindings.values()
                       for b in devices.values())
