"""API bearer tokens: made by the provisioning file or the CLI, stored as SHA-256 only."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.calls.ids import TenantId, UserId
from hookswitch.calls.policy import Principal
from hookswitch.directory.credentials import new_token, same_digest, token_digest
from hookswitch.directory.models import ApiTokenRow, UserRow
from hookswitch.store.db import as_utc

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class TokenError(Exception):
    code = "token-error"


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w``."""
    match = _DURATION.match(text.strip())
    if not match:
        raise TokenError(f"{text!r} is not a duration such as 30d, 12h or 15m")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


async def principal_for(session: AsyncSession, token: str) -> Principal | None:
    """The user a token acts for, or None if unknown, revoked or expired."""
    digest = token_digest(token)
    row = await session.execute(
        select(ApiTokenRow, UserRow)
        .join(UserRow, UserRow.id == ApiTokenRow.user_id)
        .where(ApiTokenRow.token_sha256 == digest)
    )
    found = row.first()
    if found is None:
        return None
    stored, user = found
    # The lookup is by digest; compare once more in constant time (defence in depth).
    if not same_digest(stored.token_sha256, digest) or stored.revoked_at is not None:
        return None
    if stored.expires_at is not None and as_utc(stored.expires_at) <= datetime.now(UTC):
        return None
    return Principal(
        user_id=UserId(user.id), tenant_id=TenantId(user.tenant_id), extension=user.extension,
        token_id=stored.id,
    )


async def live_tokens(session: AsyncSession, token_ids: set[str]) -> set[str]:
    """Which of these tokens still act for their user: not revoked, not expired, and the
    user still exists (removing a user deletes its tokens)."""
    rows = await session.execute(
        select(ApiTokenRow.id, ApiTokenRow.expires_at).where(
            ApiTokenRow.id.in_(token_ids), ApiTokenRow.revoked_at.is_(None)
        )
    )
    now = datetime.now(UTC)
    # Compared here, not in SQL: SQLite keeps these datetimes as text without a zone.
    return {token_id for token_id, expires in rows.all()
            if expires is None or as_utc(expires) > now}


async def create_token(
    session: AsyncSession, tenant_id: str, extension: str, expires_in: timedelta | None
) -> tuple[str, str]:
    """A new token for the user; returns (token id, token). The token is shown only once."""
    user = await session.scalar(
        select(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.extension == extension)
    )
    if user is None:
        raise TokenError(f"no extension {extension} in tenant {tenant_id}")
    token = new_token()
    now = datetime.now(UTC)
    token_id = str(uuid.uuid4())
    session.add(
        ApiTokenRow(
            id=token_id,
            user_id=user.id,
            token_sha256=token_digest(token),
            source="cli",
            created_at=now,
            expires_at=now + expires_in if expires_in else None,
        )
    )
    return token_id, token


async def revoke_token(session: AsyncSession, token_or_id: str) -> bool:
    """Revoke by the token itself or by its id; True if something was revoked."""
    result = await session.execute(
        update(ApiTokenRow)
        .where(
            (ApiTokenRow.token_sha256 == token_digest(token_or_id))
            | (ApiTokenRow.id == token_or_id),
            ApiTokenRow.revoked_at.is_(None),
        )
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
