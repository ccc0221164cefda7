"""Integrations, their activations for users, and the refresh tokens of an activation.

Access tokens are API tokens like any other (``directory.models.ApiTokenRow``, source
``oauth``), so the API takes them unchanged; they carry their activation and family.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hookswitch.store.base import Base


class IntegrationRow(Base):
    """An application users may connect. Kept (``removed_at``) when it leaves the file, so
    that the deactivation notices of its activations can still be delivered."""

    __tablename__ = "integrations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(100), unique=True)
    client_secret_hash: Mapped[str] = mapped_column(String(200))  # argon2
    source: Mapped[str] = mapped_column(String(16))  # "config" or "cli"
    activation_url: Mapped[str] = mapped_column(String(2000))
    deactivation_url: Mapped[str] = mapped_column(String(2000))
    redirect_urls: Mapped[list[str]] = mapped_column(JSON)
    validation_headers: Mapped[dict[str, str]] = mapped_column(JSON)
    logo: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ActivationRow(Base):
    """One user's connection to one integration (see integrations/activation.py)."""

    __tablename__ = "activations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id",
                                                           ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    family_id: Mapped[str] = mapped_column(String(36))  # the tokens now in use
    confirmation_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshTokenRow(Base):
    """A refresh token (SHA-256 only). Used once: ``replaced_by`` is the next of its family,
    and ``replay`` that next pair encrypted with a key only this token's holder can derive,
    for a retry within the grace window."""

    __tablename__ = "refresh_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    activation_id: Mapped[str] = mapped_column(ForeignKey("activations.id",
                                                          ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_by: Mapped[str | None] = mapped_column(String(36))
    replay: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def json_dict(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}
