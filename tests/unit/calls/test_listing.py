"""The call history's cursor: what a page gives back is read back the same, and only that."""

from __future__ import annotations

import pytest

from hookswitch.calls.listing import InvalidCursor, Position, decode_cursor, encode_cursor


@pytest.mark.parametrize("position", [
    Position(ended_us=1765209366386177, leg_id="6f0c8a52-9d61-4c3e-b1a4-0c2f6d1e9a77"),
    Position(ended_us=0, leg_id="leg-0002"),
    Position(ended_us=99_999_999_999_999_999, leg_id="a"),
])
def test_a_cursor_reads_back_as_the_position_it_was_made_from(position: Position) -> None:
    cursor = encode_cursor(position)
    assert cursor.replace("-", "").replace("_", "").isalnum()  # URL-safe, no padding
    assert decode_cursor(cursor) == position


@pytest.mark.parametrize("cursor", ["", "!" * 8, "a" * 101, "QQ", "MTIzNDU"])
def test_what_is_not_a_cursor_is_refused(cursor: str) -> None:
    # Empty, not base64url, too long, one byte ("A"), no leg id ("12345").
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)
