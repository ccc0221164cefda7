"""What ``hookswitch webhooks log`` and ``replay`` do to the outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.events.models import DeliveryRow, EventRow, WebhookRow


async def delivery_log(session: AsyncSession, status: str | None, limit: int) -> list[str]:
    query = (
        select(DeliveryRow, EventRow, WebhookRow)
        .join(EventRow, EventRow.id == DeliveryRow.event_id)
        .join(WebhookRow, WebhookRow.id == DeliveryRow.webhook_id)
        .order_by(DeliveryRow.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(DeliveryRow.status == status)
    lines = []
    for delivery, event, webhook in (await session.execute(query)).all():
        payload = json.loads(event.payload)
        lines.append(
            f"{delivery.id}\t{delivery.status}\tattempts={delivery.attempts}\t"
            f"{webhook.url}\t{payload['user_extension']} {payload['state']} "
            f"seq={payload['sequence']} leg={payload['id']}\t{delivery.last_error or ''}"
        )
    return lines


async def replay(session: AsyncSession, ids: list[int], all_failed: bool) -> int:
    query = update(DeliveryRow).where(DeliveryRow.status == "failed")
    if not all_failed:
        query = query.where(DeliveryRow.id.in_(ids))
    now = datetime.now(UTC)
    result = await session.execute(
        query.values(status="pending", next_attempt_at=now, created_at=now, attempts=0)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
