"""SIP messages from the phones' logs: sipp's ``-trace_msg`` file and baresip's SIP trace
(``-s``), parsed into :class:`SipMessage`; :class:`MessageLog` gives both phones the same
questions about them (``received``, ``sent``, ``wait_received``)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from .wait import WaitTimeout, wait_until

_STATUS_RE = re.compile(r"^SIP/2\.0 (\d{3})\b")
_REQUEST_RE = re.compile(r"^([A-Z]+) \S+ SIP/2\.0")
_CSEQ_RE = re.compile(r"^CSeq\s*:\s*\d+\s+([A-Za-z]+)", re.IGNORECASE | re.MULTILINE)
_SIPP_SEPARATOR = "-" * 47
_BARESIP_TRACE_RE = re.compile(
    r"#\n(?:UDP|TCP|TLS|WS|WSS) (\S+) -> (\S+)\n(.*?)\x1b\[;m", re.DOTALL
)


@dataclass(frozen=True)
class SipMessage:
    """One SIP message from a phone's log, as sent or received by that phone."""

    direction: str  # "sent" or "received"
    text: str
    unexpected: bool = False

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def status(self) -> int | None:
        """Status code for a response, ``None`` for a request."""
        match = _STATUS_RE.match(self.first_line)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str | None:
        """Method for a request, ``None`` for a response."""
        match = _REQUEST_RE.match(self.first_line)
        return match.group(1) if match else None

    @property
    def cseq_method(self) -> str | None:
        match = _CSEQ_RE.search(self.text)
        return match.group(1).upper() if match else None

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or ``None``."""
        pattern = re.compile(rf"^{re.escape(name)}\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
        match = pattern.search(self.text)
        return match.group(1).strip() if match else None

    def is_kind(self, method_or_code: str | int) -> bool:
        """True for a request of that method (``"INVITE"``) or a response with that code
        (``486`` / ``"486"``) or class (``"4xx"``)."""
        kind = str(method_or_code).strip()
        status = self.status
        if status is not None:
            if re.fullmatch(r"\d{3}", kind):
                return status == int(kind)
            if re.fullmatch(r"\dxx", kind, re.IGNORECASE):
                return status // 100 == int(kind[0])
            return False
        return self.method == kind.upper()


def parse_sipp_log(text: str) -> list[SipMessage]:
    """Split a sipp 3.6 ``-trace_msg`` log into messages.

    Entries look like ``-----...----- <timestamp>`` then ``UDP message sent (N bytes):`` or
    ``UDP message received [N] bytes :`` or ``Unexpected UDP message received:``, a blank line
    and the SIP message.
    """
    messages: list[SipMessage] = []
    for block in text.split(_SIPP_SEPARATOR):
        lines = block.split("\n")
        if len(lines) < 3:
            continue
        title = lines[1].strip().lower()
        if "message sent" in title:
            direction = "sent"
        elif "message received" in title:
            direction = "received"
        else:  # "Ignoring final ... message" and other notes
            continue
        body = "\n".join(lines[2:]).strip("\n").replace("\r", "")
        if body:
            messages.append(SipMessage(direction, body, unexpected="unexpected" in title))
    return messages


def parse_baresip_trace(text: str, own_port: int) -> list[SipMessage]:
    """SIP messages from baresip's trace (``-s``) in its log, in order; ``own_port`` is the
    phone's SIP port, which tells what it sent from what it received.

    The trace prints ``#``, ``UDP src -> dst``, the message, then a colour reset."""
    messages = []
    for match in _BARESIP_TRACE_RE.finditer(text):
        src_port = int(match.group(1).rsplit(":", 1)[1])
        direction = "sent" if src_port == own_port else "received"
        body = match.group(3).replace("\r", "").strip("\n")
        messages.append(SipMessage(direction, body))
    return messages


class MessageLog(ABC):
    """What a phone sent and received, from the SIP messages its log shows."""

    name: str  # for messages: "sipp uac_call.xml", "baresip 200"

    @abstractmethod
    def sip_messages(self) -> list[SipMessage]:
        """Every SIP message of the log so far, in order."""

    @abstractmethod
    def diagnostics(self) -> str:
        """What to show when a wait fails: the end of the logs."""

    def received(self, method_or_code: str | int) -> list[str]:
        """Texts of received messages of that kind: a method (``"BYE"``), a status code
        (``486``/``"486"``) or a class (``"4xx"``). Unexpected messages are included."""
        return [
            m.text
            for m in self.sip_messages()
            if m.direction == "received" and m.is_kind(method_or_code)
        ]

    def sent(self, method_or_code: str | int) -> list[str]:
        """Texts of sent messages of that kind (same matching as ``received``)."""
        return [
            m.text
            for m in self.sip_messages()
            if m.direction == "sent" and m.is_kind(method_or_code)
        ]

    def wait_received(
        self, method_or_code: str | int, timeout: float = 10, count: int = 1
    ) -> list[str]:
        """Wait until at least ``count`` messages of that kind were received; return them."""

        def enough() -> list[str] | None:
            found = self.received(method_or_code)
            return found if len(found) >= count else None

        try:
            return wait_until(enough, timeout)
        except WaitTimeout:
            raise WaitTimeout(
                f"{self.name}: fewer than {count} {method_or_code} received in {timeout}s\n"
                + self.diagnostics()
            ) from None
