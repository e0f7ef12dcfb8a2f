"""The gateway's two clocks: the loop's monotonic seconds for every limit, epoch milliseconds only where
AWS shapes carry a date (connectedAt, lastActiveAt, requestTimeEpoch)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Clock:
    """Injected so tests can step either clock; `monotonic=None` means the running loop's `time()`."""

    monotonic: Callable[[], float] | None = None
    epoch_ms: Callable[[], int] = now_ms
