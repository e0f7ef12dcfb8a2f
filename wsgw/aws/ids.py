"""AWS-like ids, request times and execute-api ARNs."""

from __future__ import annotations

import base64
import os
import random
import time
from typing import Final

__all__ = ["fast_id", "method_arn", "new_id", "request_time"]


def new_id() -> str:
    """A fresh AWS-like id (connectionId, requestId, messageId): 11 random bytes, URL-safe base64.

    AWS's ids are 16 characters ending in ``=`` and use ``-``/``_`` (e.g. ``BFaT_fALIAMCKug=``).
    """
    return base64.urlsafe_b64encode(os.urandom(11)).decode("ascii")


_random = random.Random()  # seeded from os.urandom; not for secrets


def fast_id() -> str:
    """An id of the same shape for requestId/messageId, which need to be unique, not unguessable.

    Two getrandom syscalls per message were measurable on the hot path; connection ids (which are
    capabilities: knowing one lets you push to it) keep using new_id().
    """
    return base64.urlsafe_b64encode(_random.getrandbits(88).to_bytes(11, "big")).decode("ascii")


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
