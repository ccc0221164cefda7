"""What the example integrator remembers: in memory, so a restart forgets every connection
(the tokens die with the process; the users connect again). A real CRM keeps connections in
its database, with the tokens encrypted at rest, bound to its own user who clicked Connect.

Every method holds one lock for a few dictionary operations and never awaits, so the store
is safe from the event loop and from threads alike. Refreshing a connection's tokens is
serialised by the connection's own ``refresh_lock`` (see app.py)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# (tenant_id, user_extension): one hookswitch user, the unit an activation is for.
UserKey = tuple[str, str]

# How long a confirmation key waits for its activation: the user has to log in to the
# portal and read the consent page.
KEY_LIFETIME = 600.0
# webhook-ids remembered for deduplication (at-least-once delivery repeats recent ones).
WEBHOOK_IDS_KEPT = 10_000


@dataclass(slots=True, kw_only=True)
class Connection:
    """One user's activation of this integration: the tokens hookswitch delivered."""

    tenant_id: str
    user_extension: str
    confirmation_key: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float  # time.time() at which the access token dies
    scope: str
    connected_at: float
    refreshes: int = 0
    notice: str = ""  # what the last action on this connection gave, for the page
    refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def user(self) -> UserKey:
        return (self.tenant_id, self.user_extension)

    def rotate(self, access_token: str, refresh_token: str, expires_in: float,
               scope: str, now: float) -> None:
        """Keep a refresh's answer: both tokens are new, the old refresh token is dead."""
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.expires_at = now + expires_in
        self.scope = scope or self.scope
        self.refreshes += 1


@dataclass(frozen=True, slots=True)
class Ended:
    """Why a user's connection ended: a deactivation reason from hookswitch, or what this
    app saw (``invalid_grant``, ``activation_failed``)."""

    tenant_id: str
    user_extension: str
    reason: str
    at: float


class Store:
    def __init__(self, *, events_kept: int = 20,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._events_kept = events_kept
        self._keys: dict[str, float] = {}  # confirmation key -> when it was issued
        self._activated_by: dict[str, UserKey] = {}  # used key -> the user it connected
        self._connections: dict[UserKey, Connection] = {}
        self._ended: dict[UserKey, Ended] = {}
        self._events: dict[UserKey, deque[dict[str, Any]]] = {}
        self._webhook_ids: OrderedDict[str, None] = OrderedDict()

    # -- confirmation keys: issued by Connect, used once by an activation ---------------

    def issue_key(self) -> str:
        key = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_old_keys()
            self._keys[key] = self._monotonic()
        return key

    def take_key(self, key: str) -> bool:
        """True once for a key this app issued less than KEY_LIFETIME ago; then never."""
        with self._lock:
            self._forget_old_keys()
            return self._keys.pop(key, None) is not None

    def activated_by(self, key: str) -> UserKey | None:
        """The user whose activation used ``key`` (the page names them on return)."""
        with self._lock:
            return self._activated_by.get(key)

    def _forget_old_keys(self) -> None:
        oldest = self._monotonic() - KEY_LIFETIME
        for key in [key for key, issued in self._keys.items() if issued < oldest]:
            del self._keys[key]
        while len(self._activated_by) > 1000:  # only recent returns need a name
            del self._activated_by[next(iter(self._activated_by))]

    # -- connections -------------------------------------------------------------------

    def connect(self, connection: Connection) -> None:
        """Keep a new activation; it replaces the user's previous one (hookswitch revoked
        that one's tokens when it issued these)."""
        with self._lock:
            self._connections[connection.user] = connection
            self._ended.pop(connection.user, None)
            self._activated_by[connection.confirmation_key] = connection.user

    def connection(self, user: UserKey) -> Connection | None:
        with self._lock:
            return self._connections.get(user)

    def connections(self) -> list[Connection]:
        with self._lock:
            return sorted(self._connections.values(), key=lambda c: c.user)

    def drop(self, user: UserKey, reason: str, *, only: Connection | None = None) -> bool:
        """Forget the user's tokens and remember why. With ``only``, drop the connection
        only if it is still that one (not a newer activation of the same user)."""
        with self._lock:
            current = self._connections.get(user)
            if only is not None and current is not only:
                return False
            self._connections.pop(user, None)
            self._ended[user] = Ended(user[0], user[1], reason, time.time())
            return current is not None

    def ended(self) -> list[Ended]:
        with self._lock:
            return sorted(self._ended.values(), key=lambda e: e.at, reverse=True)

    # -- events --------------------------------------------------------------------------

    def add_event(self, webhook_id: str, event: dict[str, Any]) -> bool:
        """Keep an event unless its ``webhook-id`` was seen (a redelivery): False then."""
        user = (str(event.get("tenant_id")), str(event.get("user_extension")))
        with self._lock:
            if webhook_id in self._webhook_ids:
                return False
            self._webhook_ids[webhook_id] = None
            if len(self._webhook_ids) > WEBHOOK_IDS_KEPT:
                self._webhook_ids.popitem(last=False)
            kept = self._events.setdefault(user, deque(maxlen=self._events_kept))
            kept.appendleft(event)  # newest first, as the page shows them
            return True

    def events(self) -> dict[UserKey, list[dict[str, Any]]]:
        with self._lock:
            return {user: list(kept) for user, kept in sorted(self._events.items())}
