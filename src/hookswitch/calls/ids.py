"""Identifiers of the call domain. Plain strings at runtime, distinct types for mypy."""

from __future__ import annotations

import uuid
from typing import NewType

TenantId = NewType("TenantId", str)
UserId = NewType("UserId", str)
CallId = NewType("CallId", str)
LegId = NewType("LegId", str)


def new_call_id() -> CallId:
    return CallId(str(uuid.uuid4()))


def new_leg_id() -> LegId:
    return LegId(str(uuid.uuid4()))


def stable_id(namespace: uuid.UUID | str, kind: str, key: str) -> str:
    """An id that is the same every time for the same names (uuid5): provisioned objects
    keep their ids across restarts and re-applied files."""
    return str(uuid.uuid5(uuid.UUID(str(namespace)), f"{kind}:{key}"))
