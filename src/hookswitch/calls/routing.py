"""Where a dialled string goes, within the caller's tenant only."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hookswitch.calls.directory import Tenant, Trunk, User

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass(frozen=True, slots=True)
class ToUser:
    user: User


@dataclass(frozen=True, slots=True)
class ToTrunk:
    trunk: Trunk
    number: str


@dataclass(frozen=True, slots=True)
class Unroutable:
    status: int
    phrase: str


Route = ToUser | ToTrunk | Unroutable


def is_e164(value: str) -> bool:
    return E164.match(value) is not None


def route(tenant: Tenant, dialled: str) -> Route:
    """An extension of the tenant, a number of one of its users (stays internal), or an
    E.164 number through the tenant's first trunk."""
    user = tenant.users.get(dialled) or tenant.user_by_number(dialled)
    if user is not None:
        return ToUser(user)
    if dialled.startswith("+"):
        if not is_e164(dialled):
            return Unroutable(484, "Address Incomplete")
        if not tenant.trunks:
            return Unroutable(403, "No Trunk For External Calls")
        return ToTrunk(tenant.trunks[0], dialled)
    return Unroutable(404, "Not Found")
