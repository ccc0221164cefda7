"""Call and leg records: created, answered, ended, reason, and every state change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hookswitch.store.base import Base


class CallRow(Base):
    __tablename__ = "calls"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # internal, inbound, outbound, click-to-dial
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LegRow(Base):
    __tablename__ = "legs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    extension: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(8), index=True)
    reason: Mapped[str | None] = mapped_column(String(16))
    caller_number: Mapped[str] = mapped_column(String(64))
    caller_name: Mapped[str] = mapped_column(String(200))
    callee_number: Mapped[str] = mapped_column(String(64))
    callee_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The node whose switch holds the leg while it lives (DEFAULT_NODE on a single server).
    node_id: Mapped[str] = mapped_column(String(64), index=True, default="default",
                                         server_default="default")


class LegChangeRow(Base):
    """One row per state change of a leg, numbered per leg from 1."""

    __tablename__ = "leg_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    leg_id: Mapped[str] = mapped_column(ForeignKey("legs.id", ondelete="CASCADE"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(16))
    at_us: Mapped[int] = mapped_column(BigInteger)
