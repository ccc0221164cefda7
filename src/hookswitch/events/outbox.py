"""Writes call events to the outbox, inside the transaction that records the leg change,
so that a crash can never lose one (at-least-once delivery starts here)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.events.models import WebhookRow, WebhookSubscriptionRow
from hookswitch.events.payload import LegRecord, call_event

# An event's unique id: the webhook-id of its deliveries and the id of its SSE message.
EVENT_UID = re.compile(r"msg_[0-9a-f]{32}")


def new_event_uid() -> str:
    return "msg_" + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Subscription:
    webhook_id: str
    tenant_id: str
    extensions: frozenset[str] | None  # None: every user of the tenant


@dataclass
class Subscriptions:
    """Which webhooks receive which users' events: a tenant's webhooks its users' (or some
    extensions'), and an integration's webhook the users who activated it (``by_user``,
    who also get summaries). A webhook answered 410 is dropped."""

    by_tenant: dict[str, list[Subscription]] = field(default_factory=dict)
    by_user: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession) -> Subscriptions:
        live = WebhookRow.disabled_at.is_(None)
        subs = cls()
        for row in (await session.scalars(
                select(WebhookRow).where(live, WebhookRow.kind == "tenant"))).all():
            subs.by_tenant.setdefault(str(row.tenant_id), []).append(
                Subscription(row.id, str(row.tenant_id),
                             frozenset(row.extensions) if row.extensions is not None else None)
            )
        for webhook_id, user_id in (await session.execute(
                select(WebhookSubscriptionRow.webhook_id, WebhookSubscriptionRow.user_id)
                .join(WebhookRow, WebhookRow.id == WebhookSubscriptionRow.webhook_id)
                .where(live))).all():
            subs.by_user.setdefault(user_id, []).append(webhook_id)
        return subs

    def replace_with(self, newer: Subscriptions) -> None:
        """Take what was loaded again (an activation began or ended), in place: the
        recorder and the sender hold this object."""
        self.by_tenant, self.by_user = newer.by_tenant, newer.by_user

    def for_user(self, tenant_id: str, extension: str, user_id: str = "") -> list[str]:
        return [
            sub.webhook_id for sub in self.by_tenant.get(tenant_id, [])
            if sub.extensions is None or extension in sub.extensions
        ] + self.by_user.get(user_id, [])

    def summaries_for(self, user_id: str) -> list[str]:
        """Summaries go to integrations' webhooks only (DESIGN.md, Integrations)."""
        return self.by_user.get(user_id, [])

    def disable(self, webhook_id: str) -> None:
        for tenant, subs in self.by_tenant.items():
            self.by_tenant[tenant] = [s for s in subs if s.webhook_id != webhook_id]
        for user, hooks in self.by_user.items():
            self.by_user[user] = [hook for hook in hooks if hook != webhook_id]


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """A call event just committed to the outbox, for the sender and the live stream."""

    id: int  # orders the live stream (Last-Event-ID)
    uid: str  # the webhook-id
    user_id: str
    leg_id: str
    payload: str
    kind: str = "call"  # live streams show calls only


@dataclass(frozen=True, slots=True)
class OutboxDelivery:
    """One of those events for one webhook, just committed as pending."""

    id: int
    event_id: int
    webhook_id: str
    leg_id: str
    created_at: datetime


def event_values(
    leg: LegRecord, user_id: str, state: str, sequence: int, at_us: int, reason: str | None
) -> dict[str, Any]:
    """The columns of one call event's outbox row, all but its id."""
    return outbox_values("call", str(leg.tenant_id), user_id, str(leg.id), sequence,
                         call_event(leg, state, sequence, at_us, reason))


def outbox_values(kind: str, tenant_id: str, user_id: str, stream_id: str, sequence: int,
                  payload: dict[str, Any]) -> dict[str, Any]:
    """The columns of an outbox row of any kind (call, summary, deactivation), all but its
    id; ``stream_id`` orders its deliveries (a leg's, an activation's)."""
    return {
        "uid": new_event_uid(),
        "kind": kind,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "leg_id": stream_id,
        "sequence": sequence,
        "payload": json.dumps(payload),
        "created_at": datetime.now(UTC),
    }


# The node of a delivery that no events worker has claimed yet (one written by the
# command line, or by the API's services): the next rescan of any node takes it.
UNCLAIMED = ""


def delivery_values(event_id: int, leg_id: str, created_at: datetime,
                    webhook_id: str, node_id: str = UNCLAIMED) -> dict[str, Any]:
    """The columns of one pending delivery of an event, all but its id."""
    return {"event_id": event_id, "webhook_id": webhook_id, "leg_id": leg_id,
            "status": "pending", "attempts": 0, "next_attempt_at": created_at,
            "created_at": created_at, "node_id": node_id}
