"""AWS-like ids, request times and execute-api ARNs."""

from __future__ import annotations

import binascii
import os
import time
from typing import Final

__all__ = ["method_arn", "new_id", "request_time"]

_IDS_PER_DRAW: Final = 1024
_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
_pool: list[str] = []


def _draw_ids(count: int) -> list[str]:
    """`count` ids from one getrandom call and one base64 pass: 11 random bytes and a zero byte per id encode
    to 16 characters, the first 15 exactly those of the 11 bytes' own encoding, the 16th then set to its ``=``."""
    raw = bytearray(os.urandom(12 * count))
    raw[11::12] = bytes(count)
    text = bytearray(binascii.b2a_base64(raw, newline=False))
    text[15::16] = b"=" * count
    encoded = text.translate(_URLSAFE).decode("ascii")
    return [encoded[i:i + 16] for i in range(0, 16 * count, 16)]


def new_id() -> str:
    """A fresh AWS-like id (connectionId, requestId, extendedRequestId): 11 random bytes, URL-safe base64.

    AWS's ids are 16 characters ending in ``=`` and use ``-``/``_`` (e.g. ``BFaT_fALIAMCKug=``). Drawn from the
    OS's CSPRNG (connection ids are capabilities: knowing one lets you push to it) a block at a time: a
    getrandom call and a base64 call per id were 7% of a routed message's cost.
    """
    try:
        return _pool.pop()
    except IndexError:
        _pool.extend(_draw_ids(_IDS_PER_DRAW))
        return new_id()


os.register_at_fork(after_in_child=_pool.clear)   # a forked child must not hand out its parent's next ids

_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_cached_time: tuple[int, str] = (-1, "")  # one-entry cache: many events share a second


def request_time(epoch_ms: int) -> str:
    """``requestTime`` as AWS writes it, e.g. ``20/Jan/2024:11:55:00 +0000`` (UTC, English months)."""
    global _cached_time
    second = epoch_ms // 1000
    cached = _cached_time
    if cached[0] == second:
        return cached[1]
    t = time.gmtime(second)
    text = (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )
    _cached_time = (second, text)
    return text


def method_arn(region: str, account_id: str, api_id: str, stage: str, route_key: str) -> str:
    """A route's methodArn: ``arn:aws:execute-api:{region}:{account}:{api}/{stage}/{route}``."""
    return f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/{route_key}"
