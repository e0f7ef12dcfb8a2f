"""The messages the load generator sends: JSON with a fixed-width id first, so replies are matched by slicing."""

from __future__ import annotations

PREFIX = b'{"id":"'
ID_WIDTH = 10
ERROR_FRAME = '{"message": "Internal server error", "connectionId": "bench", "requestId": "bench"}'


def make_message(ident: int, action: str, size: int) -> bytes:
    """`{"id":"0000000042","action":"echo","p":"xxx"}` padded to `size` bytes (never shorter than the head)."""
    head = b'%s%010d","action":"%s","p":"' % (PREFIX, ident, action.encode())
    pad = max(0, size - len(head) - 2)
    return head + b"x" * pad + b'"}'


def message_id(data: bytes) -> int | None:
    """The id of one of our messages, or None for any other frame (an error frame, a stranger's frame)."""
    if not data.startswith(PREFIX):
        return None
    digits = data[len(PREFIX):len(PREFIX) + ID_WIDTH]
    return int(digits) if digits.isdigit() else None
