"""What the routes work with, given to them as a declared dependency (``ServicesDep``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.api.forward import Forwarder
from hookswitch.api.idempotency import IdempotencyStore
from hookswitch.api.ratelimit import LoginThrottle, RateLimiter
from hookswitch.api.schemas import HealthStatus
from hookswitch.calls.control import CallControl
from hookswitch.calls.ids import UserId
from hookswitch.calls.listing import CallListing
from hookswitch.calls.registrations import Binding
from hookswitch.events.stream import Broadcaster
from hookswitch.integrations.service import Integrations
from hookswitch.store.writes import Writer


@dataclass
class Services:
    sessions: async_sessionmaker[AsyncSession]
    call_control: CallControl
    call_listing: CallListing  # GET /v3/calls and /v3/calls/history
    rate_limiter: RateLimiter
    idempotency: IdempotencyStore
    broadcaster: Broadcaster
    integrations: Integrations
    writer: Writer  # the one writer (portal sessions)
    login_throttle: LoginThrottle
    session_ttl: timedelta  # a portal login's lifetime
    health: Callable[[], HealthStatus]
    metrics: Callable[[], bytes] = lambda: b""  # GET /metrics: Prometheus' text format
    # a user's registered devices now (the portal's Calls page); none without SIP
    devices: Callable[[UserId], list[Binding]] = lambda _user_id: []
    # In a cluster, sends a leg's commands to the node that holds it; None on one node
    forwarder: Forwarder | None = None


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]
