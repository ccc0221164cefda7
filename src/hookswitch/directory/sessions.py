"""Portal logins: a random cookie value (stored as its SHA-256) and a CSRF token per session.

Sessions are written by the one writer (these commands run there, store/writes.py) and read
here by the server.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.calls.ids import TenantId, UserId
from hookswitch.calls.policy import Principal
from hookswitch.directory.credentials import token_digest
from hookswitch.directory.models import UserRow, WebSessionRow
from hookswitch.store.db import as_utc


@dataclass(frozen=True, slots=True)
class WebSession:
    principal: Principal
    csrf_token: str
    name: str


def new_session_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A write command: a logged-in browser, until ``expires_at``; old sessions go."""

    cookie_sha256: str
    user_id: str
    csrf_token: str
    created_at: datetime
    lifetime: timedelta

    async def run(self, session: AsyncSession) -> object:
        await session.execute(delete(WebSessionRow).where(
            WebSessionRow.expires_at < self.created_at))
        session.add(WebSessionRow(id=self.cookie_sha256, user_id=self.user_id,
                                  csrf_token=self.csrf_token, created_at=self.created_at,
                                  expires_at=self.created_at + self.lifetime))
        return None


@dataclass(frozen=True, slots=True)
class CloseSession:
    cookie_sha256: str

    async def run(self, session: AsyncSession) -> object:
        await session.execute(delete(WebSessionRow).where(
            WebSessionRow.id == self.cookie_sha256))
        return None


async def session_for(db: AsyncSession, cookie: str) -> WebSession | None:
    """The live session of a cookie value, or None."""
    found = (await db.execute(
        select(WebSessionRow, UserRow).join(UserRow, UserRow.id == WebSessionRow.user_id)
        .where(WebSessionRow.id == token_digest(cookie))
    )).first()
    if found is None:
        return None
    row, user = found
    if as_utc(row.expires_at) <= datetime.now(UTC):
        return None
    principal = Principal(user_id=UserId(user.id), tenant_id=TenantId(user.tenant_id),
                          extension=user.extension)
    return WebSession(principal, row.csrf_token, user.name)
