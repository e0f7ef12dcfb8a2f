"""The deadline watchdog: one periodic check enforces the timeout of every integration call in flight.

A timer per call (asyncio.timeout) cost about a tenth of the routed path and more of a connect; the watchdog
keeps one deadline per running task and cancels the task when it passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from wsgw.integrations.calls import Cancellable

WATCHDOG_SECONDS = 0.025       # integration timeouts are enforced within this


class Deadlines:
    """Tasks inside an integration call, with the loop time each must be done by."""

    def __init__(self, period: float = WATCHDOG_SECONDS) -> None:
        self.period = period
        self.deadlines: dict[Cancellable, float] = {}
        self.expired: set[Cancellable] = set()          # ... that the watchdog cancelled
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watchdog = loop.create_task(self._watch())

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()

    async def within(self, call: Awaitable[object], timeout_s: float,
                     task: Cancellable | None = None) -> object:
        """Await `call`; TimeoutError once timeout_s passed.

        `task` is the task running this (the connection's worker on the message path: asyncio.current_task()
        showed at a tenth of the routed profile under uvloop); a StandIn while it runs eagerly, which forwards
        the watchdog's cancel to the task that runs the call once it waits."""
        task = task or asyncio.current_task()
        assert task is not None and self._loop is not None
        self.deadlines[task] = self._loop.time() + timeout_s
        try:
            return await call
        except asyncio.CancelledError:
            if task not in self.expired:
                raise
            raise TimeoutError from None
        finally:
            del self.deadlines[task]
            if task in self.expired:             # our cancel, delivered or swallowed: take it back
                self.expired.discard(task)
                task.uncancel()

    async def _watch(self) -> None:
        """Cancel integration calls that outlive their timeout (checked every `period`)."""
        assert self._loop is not None
        while True:
            await asyncio.sleep(self.period)
            now = self._loop.time()
            for task, deadline in list(self.deadlines.items()):
                if now >= deadline and task not in self.expired:
                    self.expired.add(task)
                    task.cancel()
