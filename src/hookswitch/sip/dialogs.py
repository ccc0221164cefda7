"""A sippy dialog as plain values (``calls.dialogs.Dialog``), and a BYE built back from them.

The snapshot reads the fields sippy's ``UA.genRequest`` uses for an in-dialog request; the
BYE is that same request, built without a ``UA`` (which cannot be restored from text), and
sent as an ordinary client transaction, so it is retransmitted until answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from sippy.SipCallId import SipCallId
from sippy.SipConf import SipConf
from sippy.SipFrom import SipFrom
from sippy.SipRequest import SipRequest
from sippy.SipRoute import SipRoute
from sippy.SipTo import SipTo
from sippy.SipURL import SipURL

from hookswitch.calls.dialogs import Dialog

log = structlog.get_logger("hookswitch.sip")


def snapshot(ua: Any) -> Dialog | None:
    """The dialog of a connected ``UA``; None if it has none (yet)."""
    if ua is None or ua.cId is None or ua.rTarget is None or ua.rAddr is None:
        return None
    (host, port), transport = ua.rAddr
    return Dialog(
        sip_call_id=str(ua.cId),
        local_uri=str(ua.lUri),
        remote_uri=str(ua.rUri),
        remote_target=str(ua.rTarget),
        route_set=tuple(str(route) for route in ua.routes or ()),
        next_cseq=int(ua.lCSeq),
        next_hop=(str(host), int(port)),
        transport=str(transport or "udp"),
    )


def _parsed(header: Any) -> Any:
    header.parse()
    return header


def bye_request(dialog: Dialog) -> Any:
    """The BYE that ends ``dialog``, as sippy would have sent it from the dialog's UA."""
    return SipRequest(
        method="BYE",
        ruri=SipURL(url=dialog.remote_target),
        fr0m=_parsed(SipFrom(body=dialog.local_uri)),
        to=_parsed(SipTo(body=dialog.remote_uri)),
        cseq=dialog.next_cseq,
        callid=SipCallId(body=dialog.sip_call_id),
        routes=[_parsed(SipRoute(body=route)) for route in dialog.route_set],
        target=(dialog.next_hop, dialog.transport),
        user_agent=SipConf.my_uaname,
    )


def send_bye(transactions: Any, dialog: Dialog, done: Callable[[int], object]) -> None:
    """Send the BYE; ``done(status)`` gets the final status (408 if nobody answered)."""

    def answered(resp: Any) -> None:
        status = int(resp.getSCode()[0])
        if status >= 200:
            done(status)

    transactions.newTransaction(bye_request(dialog), answered)
