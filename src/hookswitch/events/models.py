"""The durable outbox: every call event once, and one delivery row per webhook; and the
webhooks themselves (from the provisioning file)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hookswitch.store.base import Base


class EventRow(Base):
    """A call event, written in the same transaction as the leg change it describes.
    Its ``id`` orders the live stream (``Last-Event-ID``)."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(40), unique=True)  # the webhook-id (dedupe key)
    # "call" (a leg's state change), "summary" (after its HANGUP), or "deactivation" (an
    # integration's end, for its Deactivation URL). Live streams show calls only.
    kind: Mapped[str] = mapped_column(String(16), default="call", server_default="call")
    tenant_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    leg_id: Mapped[str] = mapped_column(String(36), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeliveryRow(Base):
    """One event for one webhook: pending until delivered, or parked as failed."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"),
                                          index=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    leg_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(10), index=True)  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500))
    # The node whose events worker sends it; a survivor takes a dead node's over.
    node_id: Mapped[str] = mapped_column(String(64), index=True, default="default",
                                         server_default="default")


class WebhookRow(Base):
    """Where events are POSTed: a tenant's webhook (``[[tenants.webhooks]]``, kind
    ``tenant``), an integration's webhook (``events``) or its Deactivation URL
    (``deactivation``). Disabled by a 410."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="tenant", server_default="tenant")
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    integration_id: Mapped[str | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str | None] = mapped_column(String(200))
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    extensions: Mapped[list[str] | None] = mapped_column(JSON)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookSubscriptionRow(Base):
    """A webhook that receives one user's events (and their summaries): an integration's,
    while the user has it activated. Tenant webhooks need none (their tenant's users)."""

    __tablename__ = "webhook_subscriptions"
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"),
                                            primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
