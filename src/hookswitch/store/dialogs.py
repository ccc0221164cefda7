"""The SIP dialogs of answered calls, kept so that a crash can still end them (calls/dialogs.py):
saved and deleted by the one writer, taken at the next start."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import JSON, DateTime, Integer, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from hookswitch.calls.dialogs import Dialog
from hookswitch.store.base import Base

log = structlog.get_logger("hookswitch.store")


class DialogRow(Base):
    """A SIP dialog of an answered call, kept so that a crash can still end it with BYE
    (calls/dialogs.py). Deleted when the call ends normally."""

    __tablename__ = "dialogs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(36), index=True)
    node_id: Mapped[str] = mapped_column(String(64), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 0 the caller's side, 1 the callee's
    dialog: Mapped[dict[str, Any]] = mapped_column(JSON)
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def dialog_json(dialog: Dialog) -> dict[str, Any]:
    return {"sip_call_id": dialog.sip_call_id, "local_uri": dialog.local_uri,
            "remote_uri": dialog.remote_uri, "remote_target": dialog.remote_target,
            "route_set": list(dialog.route_set), "next_cseq": dialog.next_cseq,
            "next_hop": list(dialog.next_hop), "transport": dialog.transport}


def _dialog_of(data: dict[str, Any]) -> Dialog:
    host, port = data["next_hop"]
    return Dialog(sip_call_id=data["sip_call_id"], local_uri=data["local_uri"],
                  remote_uri=data["remote_uri"], remote_target=data["remote_target"],
                  route_set=tuple(data["route_set"]), next_cseq=int(data["next_cseq"]),
                  next_hop=(str(host), int(port)), transport=data.get("transport", "udp"))


async def take_orphaned_dialogs(session: AsyncSession, node_id: str) -> list[Dialog]:
    """The dialogs of calls that were answered when the node stopped without ending them
    (a crash): removed from the table, for the caller to end with BYE."""
    rows = (await session.scalars(
        select(DialogRow).where(DialogRow.node_id == node_id)
        .order_by(DialogRow.call_id, DialogRow.position)
    )).all()
    await session.execute(delete(DialogRow).where(DialogRow.node_id == node_id))
    dialogs = []
    for row in rows:
        try:
            dialogs.append(_dialog_of(row.dialog))
        except (KeyError, TypeError, ValueError):
            log.warning("store.unreadable_dialog", call_id=row.call_id)
    return dialogs
