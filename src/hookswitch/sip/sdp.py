"""The little SDP the bridge needs: is an offer a hold, the same SDP with another media
direction, and the origin line a peer must keep seeing (RFC 3264)."""

from __future__ import annotations

import re
from typing import Any

from sippy.MsgBody import MsgBody

_HOLD = re.compile(r"^(a=(sendonly|inactive)|c=IN IP[46] (0\.0\.0\.0|::))\s*$", re.M)
_DIRECTIONS = ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")
# o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>
_ORIGIN = re.compile(r"^o=(\S+ \S+) (\d+) ([^\r\n]*)", re.M)


def sdp_holds(body: Any) -> bool:
    """An offer that puts the other side on hold (sendonly/inactive or c=0.0.0.0)."""
    return body is not None and _HOLD.search(str(body)) is not None


def with_direction(body: Any, direction: str) -> Any:
    """The same SDP with every stream set to ``direction`` (RFC 3264 5.1): ``inactive``
    for an answer that sends no media, ``sendonly`` to hold the other side, ``sendrecv``
    to resume."""
    out: list[str] = []
    for line in (line for line in str(body).splitlines() if line.strip()):
        if line in _DIRECTIONS:
            continue
        out.append(line)
        if line.startswith("m="):
            out.append(f"a={direction}")
    return MsgBody("\r\n".join(out) + "\r\n")


def inactive_copy(body: Any) -> Any:
    """The same SDP with every stream ``a=inactive`` (an answer that sends no media)."""
    return with_direction(body, "inactive")


def continue_origin(body: Any, previous: Any) -> Any:
    """``body`` as the next SDP of the session that ``previous`` (the last SDP this peer
    got from us) belongs to: RFC 3264 8 wants the o= line's username, session id and
    address to stay and its version to go up by one when anything changed. A B2BUA that
    passes on another phone's SDP (after a transfer, or a re-INVITE it made up) must do
    this, or a strict phone ignores the change. Unchanged if either has no o= line."""
    if previous is None or body is None:
        return body
    before, after = str(previous), str(body)
    old, new = _ORIGIN.search(before), _ORIGIN.search(after)
    if old is None or new is None:
        return body
    changed = _ORIGIN.sub("", before).strip() != _ORIGIN.sub("", after).strip()
    version = int(old[2]) + (1 if changed else 0)
    if old[1] == new[1] and int(new[2]) == version:
        return body  # already right (the usual case: the same phone's next SDP)
    line = f"o={old[1]} {version} {old[3]}"
    return MsgBody(after[:new.start()] + line + after[new.end():])
