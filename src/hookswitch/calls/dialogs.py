"""What it takes to end a call's SIP dialogs from a process that did not set them up.

After a crash (kill -9, a power cut) the phones and the trunk of every answered call are
still in the call: nothing told them it ended, and a trunk call keeps running up a bill. So
while a call is answered, ``sip/`` reports each of its dialogs as plain text (these values),
the one writer stores them, and the next start (or, in a cluster, a surviving node) sends
BYE to both sides. The domain never reads them; they only pass through.
"""

from __future__ import annotations

from dataclasses import dataclass

from hookswitch.calls.ids import CallId


@dataclass(frozen=True, slots=True, kw_only=True)
class Dialog:
    """One side's dialog, from our end (RFC 3261 12: the dialog state a BYE needs)."""

    sip_call_id: str
    local_uri: str  # our From header value, with our tag
    remote_uri: str  # their To header value, with their tag
    remote_target: str  # their Contact URI: the BYE's Request-URI
    route_set: tuple[str, ...]  # Route header values, in order
    next_cseq: int  # higher than any CSeq we sent in the dialog
    next_hop: tuple[str, int]  # where the BYE is sent
    transport: str = "udp"


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogsSaved:
    """A call's dialogs as they stand now (replaces what was saved for the call before)."""

    call_id: CallId
    dialogs: tuple[Dialog, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogsClosed:
    """The call ended normally: nothing of it needs ending after a crash."""

    call_id: CallId


DialogRecord = DialogsSaved | DialogsClosed
