"""Directory tables: tenants, users, numbers, tokens, trunks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hookswitch.store.base import Base


class TenantRow(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sip_domain: Mapped[str | None] = mapped_column(String(255), unique=True)


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "extension"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    extension: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    # Digest HA1 per algorithm (hex); the plain password is never stored.
    ha1_md5: Mapped[str] = mapped_column(String(64))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    auto_answer: Mapped[bool] = mapped_column(Boolean, default=False)
    # The web (portal) password as an argon2 hash; None: the user cannot log in.
    password_hash: Mapped[str | None] = mapped_column(String(200))


class NumberRow(Base):
    __tablename__ = "numbers"
    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # "config", "cli" or "oauth"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # An integration's access token: its activation and token family (integrations/).
    activation_id: Mapped[str | None] = mapped_column(String(36), index=True)
    family_id: Mapped[str | None] = mapped_column(String(36), index=True)


class TrunkRow(Base):
    __tablename__ = "trunks"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)


class WebSessionRow(Base):
    """A logged-in browser (the user portal): the cookie's SHA-256, and the CSRF token
    every form of that session carries."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
