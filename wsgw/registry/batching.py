"""Coalesce calls made in the same loop turn into one Redis pipeline (one round trip for many callers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Batcher(Generic[Item]):
    """`await batcher.submit(item)` returns once `flush(items)` ran for a batch holding item (or raises its error).

    Under a connect storm every handshake used to pay its own pipeline round trip; batching made registration
    cost one round trip per loop turn instead.
    """

    def __init__(self, flush: Callable[[list[Item]], Awaitable[None]], max_batch: int = 500) -> None:
        self.flush = flush
        self.max_batch = max_batch
        self.queue: list[tuple[Item, asyncio.Future[None]]] = []
        self.worker: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self.queue.append((item, future))
        if self.worker is None:
            self.worker = loop.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                batch, self.queue = self.queue[:self.max_batch], self.queue[self.max_batch:]
                try:
                    await self.flush([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self.worker = None
