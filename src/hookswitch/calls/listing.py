"""Reading a user's calls: the live legs (from the switch) and the ended ones, a page at a
time (``GET /v3/calls`` and ``GET /v3/calls/history``).

Pure, like the rest of the domain: the ended legs are read by a callable the shell gives
(as ``CallControl`` is given ``stored_leg``). Ownership is checked here, with the same rule
as call control (``policy.ensure_owner``), and the history's cursor is made and read here.

The cursor is opaque to clients: base64url (no padding) of ``<ended µs>:<leg id>``, the
sort key of the last leg of the page it came with. The next page is the legs that sort
after it (keyset pagination), so legs that end meanwhile neither shift nor repeat a page.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hookswitch.calls.errors import HookswitchError
from hookswitch.calls.ids import TenantId, UserId
from hookswitch.calls.leg import Leg
from hookswitch.calls.policy import Principal, ensure_owner
from hookswitch.calls.switch import Switch

DEFAULT_PAGE = 50
MAX_PAGE = 500

_MAX_CURSOR = 100  # characters; a real one is under 80
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")
# The end time has 17 digits at most, so that it stays a date (before the year 5139).
_POSITION = re.compile(r"(0|[1-9][0-9]{0,16}):([A-Za-z0-9_.-]{1,36})")


class InvalidCursor(HookswitchError):
    code = "invalid-cursor"
    title = "Invalid history cursor"


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """Where a page of history ends: its last leg's sort key (newest first)."""

    ended_us: int
    leg_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndedLeg:
    """A user's leg that has ended, as recorded: what its summary tells."""

    id: str
    call_id: str
    tenant_id: str
    extension: str
    direction: str
    caller_number: str
    caller_name: str
    callee_number: str
    callee_name: str
    reason: str | None
    started_us: int
    answered_us: int | None
    ended_us: int
    last_sequence: int  # of the leg's changes (its HANGUP)
    changes: tuple[tuple[str, int], ...]  # every change's state and µs, in order


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteLeg:
    """A user's live leg that another node of a cluster holds, as that node recorded it
    (its state may be a few ms behind that node's switch)."""

    id: str
    call_id: str
    state: str
    direction: str
    caller_number: str
    caller_name: str
    callee_number: str
    callee_name: str
    created_us: int


# (tenant, user) -> the user's legs that the other live nodes hold, not ended
LiveElsewhere = Callable[[TenantId, UserId], Awaitable[list[RemoteLeg]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryPage:
    legs: list[EndedLeg]
    next_cursor: str | None  # None: this is the last page


# (tenant, user, after this position or from the newest, at most this many) -> newest first
EndedLegs = Callable[[TenantId, UserId, Position | None, int], Awaitable[list[EndedLeg]]]


def encode_cursor(position: Position) -> str:
    text = f"{position.ended_us}:{position.leg_id}".encode("ascii")
    return base64.urlsafe_b64encode(text).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a ``next_cursor`` names; ``InvalidCursor`` for anything else."""
    invalid = InvalidCursor("cursor is not a next_cursor this API gave: pass the "
                            "next_cursor of the previous page unchanged, or leave cursor out "
                            "for the newest calls")
    if len(cursor) > _MAX_CURSOR or _CURSOR_TEXT.fullmatch(cursor) is None:
        raise invalid
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise invalid from exc
    match = _POSITION.fullmatch(text)
    if match is None:
        raise invalid
    return Position(ended_us=int(match[1]), leg_id=match[2])


class CallListing:
    """The read side of call control: a user's live calls and call history."""

    def __init__(self, switch: Switch, ended_legs: EndedLegs,
                 elsewhere: LiveElsewhere | None = None) -> None:
        self._switch = switch
        self._ended_legs = ended_legs
        self._elsewhere = elsewhere  # a cluster's other nodes; None on a single node

    def live(self, principal: Principal, extension: str | None) -> list[Leg]:
        """The user's legs that this node holds and have not ended, newest first."""
        return self._switch.live_legs_of(_owned_user(principal, extension))

    async def live_everywhere(self, principal: Principal, extension: str | None,
                              ) -> tuple[list[Leg], list[RemoteLeg]]:
        """The user's live legs on this node (from the switch), and those the other live
        nodes of the cluster hold (as recorded); a leg in both is listed once, from here."""
        here = self.live(principal, extension)
        if self._elsewhere is None:
            return here, []
        ids = {leg.id for leg in here}
        there = await self._elsewhere(principal.tenant_id, principal.user_id)
        return here, [leg for leg in there if leg.id not in ids]

    async def history(self, principal: Principal, extension: str | None, cursor: str | None,
                      limit: int = DEFAULT_PAGE) -> HistoryPage:
        """A page of the user's ended legs, newest first (by end, then id); ``limit`` is
        from 1 to ``MAX_PAGE`` (the API validates it)."""
        user_id = _owned_user(principal, extension)
        after = decode_cursor(cursor) if cursor is not None else None
        # One more than asked: whether it comes says if there is a next page.
        legs = await self._ended_legs(principal.tenant_id, user_id, after, limit + 1)
        if len(legs) <= limit:
            return HistoryPage(legs=legs, next_cursor=None)
        last = legs[limit - 1]
        return HistoryPage(legs=legs[:limit], next_cursor=encode_cursor(
            Position(ended_us=last.ended_us, leg_id=last.id)))


def _owned_user(principal: Principal, extension: str | None) -> UserId:
    """The user a read is for: the token's own, named or not; another extension is a
    ``NotOwner``, as for call control."""
    if extension is not None:
        ensure_owner(principal, principal.tenant_id, extension, field="user_extension")
    return principal.user_id
