"""Who may do what with call control (the vendor page's two 403 rules)."""

from __future__ import annotations

from dataclasses import dataclass

from hookswitch.calls.errors import NotOwner, NotParticipant
from hookswitch.calls.ids import TenantId, UserId


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The user a bearer token acts for."""

    user_id: UserId
    tenant_id: TenantId
    extension: str
    token_id: str | None = None  # which token: open event streams end with it


def ensure_owner(principal: Principal, tenant_id: str, extension: str,
                 field: str = "user.user_extension") -> None:
    """Click-to-dial and hangup act for ``user`` (the reads, for ``?user_extension=``,
    named by ``field``): it must be the token's own extension."""
    if principal.tenant_id != tenant_id:
        raise NotOwner(
            f"this token belongs to extension {principal.extension} of tenant "
            f"{principal.tenant_id}; user.tenant_id {tenant_id!r} does not match"
        )
    if principal.extension != extension:
        raise NotOwner(
            f"this token belongs to extension {principal.extension}; {field} "
            f"{extension!r} is another user's (a token acts only for its own extension)"
        )


def ensure_participant(principal: Principal, parties: set[UserId]) -> None:
    """Hangup: only a user with a leg in the call may end it."""
    if principal.user_id not in parties:
        raise NotParticipant(f"extension {principal.extension} is not a party to this call; "
                             "only the users whose legs are in a call may hang it up")
