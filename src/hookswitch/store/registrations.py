"""Registered devices as stored, so that they survive a restart."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from hookswitch.calls.ids import UserId
from hookswitch.calls.registrations import Binding
from hookswitch.store.base import Base
from hookswitch.store.db import as_utc


class BindingRow(Base):
    """A registered device: where to send INVITEs for a user, until it expires."""

    __tablename__ = "bindings"
    __table_args__ = (UniqueConstraint("user_id", "contact"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    contact: Mapped[str] = mapped_column(String(1000))
    source_host: Mapped[str] = mapped_column(String(255))
    source_port: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    # The Path header values of the REGISTER (RFC 3327): the edge proxy any node reaches
    # the device through. None when the device registered directly.
    path: Mapped[list[str] | None] = mapped_column(JSON)


async def load_bindings(session: AsyncSession) -> list[Binding]:
    """The bindings that have not expired yet."""
    now = datetime.now(UTC)
    return [
        Binding(user_id=UserId(row.user_id), contact=row.contact,
                source=(row.source_host, row.source_port),
                expires_at=as_utc(row.expires_at).timestamp(), user_agent=row.user_agent,
                path=tuple(row.path or ()))
        for row in (await session.scalars(select(BindingRow))).all()
        if as_utc(row.expires_at) > now
    ]
