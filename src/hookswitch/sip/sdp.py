"""The little SDP the bridge needs: is an offer a hold, and a copy that sends no media."""

from __future__ import annotations

import re
from typing import Any

from sippy.MsgBody import MsgBody

_HOLD = re.compile(r"^(a=(sendonly|inactive)|c=IN IP[46] (0\.0\.0\.0|::))\s*$", re.M)
_DIRECTIONS = ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")


def sdp_holds(body: Any) -> bool:
    """An offer that puts the other side on hold (sendonly/inactive or c=0.0.0.0)."""
    return body is not None and _HOLD.search(str(body)) is not None


def inactive_copy(body: Any) -> Any:
    """The same SDP with every stream ``a=inactive`` (an answer that sends no media)."""
    out: list[str] = []
    for line in (line for line in str(body).splitlines() if line.strip()):
        if line in _DIRECTIONS:
            continue
        out.append(line)
        if line.startswith("m="):
            out.append("a=inactive")
    return MsgBody("\r\n".join(out) + "\r\n")
