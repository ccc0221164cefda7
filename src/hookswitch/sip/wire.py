"""Checks on SIP text as it comes off and goes onto the wire, free of sippy: numbers,
whole datagrams, and what a trace may show."""

from __future__ import annotations

import re

# sippy reads 8 KB per datagram; one byte more tells a longer (cut) datagram apart.
MAX_DATAGRAM = 8192
# RFC 3261 section 25.1: no control characters but HTAB, CR and LF in the header section.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Numeric header values (Expires, Max-Forwards, Content-Length, RSeq) are 1*DIGIT up to
# 2**32 - 1 (RFC 3261 section 20.19); more than 20 digits is refused, not converted.
_DIGITS = re.compile(r"[0-9]{1,20}")
MAX_DELTA = 2**32 - 1

# An Authorization header's nonce and response together are enough to try passwords
# offline: traces keep its scheme and user name only.
_CREDENTIALS = re.compile(r"^((?:proxy-)?authorization[ \t]*:[ \t]*)([^\r\n]*)",
                          re.IGNORECASE | re.MULTILINE)
_USERNAME = re.compile(r'\busername[ \t]*=[ \t]*(?:"[^"\r\n]*"|[^,\s]*)', re.IGNORECASE)


class MalformedNumber(ValueError):
    pass


def strict_number(text: str, name: str, maximum: int = MAX_DELTA, clamp: bool = True) -> int:
    """``1*DIGIT`` in ASCII and nothing else (``int()`` also takes ``-1``, ``+7``,
    ``1_000`` and non-ASCII digits). Above ``maximum`` the value is clamped, or refused."""
    text = text.strip()
    if _DIGITS.fullmatch(text) is None:
        raise MalformedNumber(f"{name} is not a number")
    value = int(text)
    if value > maximum:
        if not clamp:
            raise MalformedNumber(f"{name} is out of range")
        value = maximum
    return value


def datagram_refusal(data: bytes) -> str | None:
    """Why a datagram is dropped unread, or None: sippy reads only 8 KB (a longer one
    arrives cut, and half a message must not be acted on), and a control character in the
    headers (a NUL in a From name) would travel on into logs and the database."""
    if len(data) > MAX_DATAGRAM:
        return f"longer than {MAX_DATAGRAM} bytes"
    if _CONTROL.search(data, 0, _header_end(data)) is not None:
        return "control character in the headers"
    return None


def _header_end(data: bytes) -> int:
    """Where sippy's SipMsg ends the headers: the first blank line, tried in its order."""
    for blank in (b"\r\n\r\n", b"\r\r", b"\n\n"):
        end = data.find(blank)
        if end != -1:
            return end
    return len(data)


def redact_credentials(message: str) -> str:
    """``Authorization: Digest username="210", <redacted>`` for each credentials line."""
    return _CREDENTIALS.sub(_redacted, message)


def _redacted(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    scheme = value.split(None, 1)[0] if value.strip() else ""
    user = _USERNAME.search(value)
    shown = " ".join(part for part in (scheme, f"{user.group(0)}," if user else "") if part)
    return f"{name}{shown} <redacted>"
