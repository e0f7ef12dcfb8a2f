"""The threads sync handlers run in: jobs handed over through one queue, results handed back to the loop in batches.

`run_in_executor` costs a concurrent Future (a lock and a condition), an asyncio Future chained to it, and one
`call_soon_threadsafe` — a write to the loop's wake-up pipe — per call. Here a job carries the loop's own future;
a finished job joins a list the loop drains, and only the first one since the last drain wakes the loop, so a
burst of results costs one wake-up.

What the callers rely on stays: a queued job that is given up on (its call timed out) never runs; one that is
already running is reported as such, so `maxHungCalls` can count the thread it holds until it returns; threads
are made as jobs need them, up to `max_threads`, and a handler that calls back into the gateway (boto3 posting to
a connection of this node) waits on the loop, never on a thread of this pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any

log = logging.getLogger("wsgw.integrations")


class JobState(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class Job:
    """One call: the function, the loop future its caller awaits, and what came of it."""

    __slots__ = ("args", "error", "fn", "future", "loop", "on_return", "result", "state")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.state = JobState.QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        self.on_return: Callable[[], None] | None = None     # set when its caller gave up while it ran


class HandlerPool:
    """Up to `max_threads` daemon threads (a hung handler must not hold the process at exit)."""

    def __init__(self, max_threads: int = 256, name: str = "wsgw-handler") -> None:
        self.max_threads = max_threads
        self.name = name
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.lock = threading.Lock()          # job states, the idle count, the thread list
        self.threads: list[threading.Thread] = []
        self.idle = 0                         # threads waiting for a job and not promised one yet
        self.finished: deque[Job] = deque()   # done, not yet handed to the loop
        self.wake_pending = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self._numbers = itertools.count(1)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Job:
        """Run fn(*args) on a thread; await job.future (on the running loop) for its result."""
        if self.closed:
            raise RuntimeError("the handler pool is shut down")
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        job = Job(fn, args, loop)
        with self.lock:
            if self.idle:
                self.idle -= 1                # that thread takes this job (or another one: each takes one)
                spawn = False
            else:
                spawn = len(self.threads) < self.max_threads
                if spawn:
                    thread = threading.Thread(target=self._work, name=f"{self.name}_{next(self._numbers)}",
                                              daemon=True)
                    self.threads.append(thread)
        self.jobs.put(job)
        if spawn:
            thread.start()
        return job

    def give_up(self, job: Job, on_return: Callable[[], None]) -> JobState:
        """The caller stopped waiting (timeout, shutdown). QUEUED: it will never run (now CANCELLED). RUNNING:
        it holds its thread until the function returns; `on_return` is called (on that thread) then. DONE: its
        result is dropped."""
        with self.lock:
            state = job.state
            if state is JobState.QUEUED:
                job.state = JobState.CANCELLED
            elif state is JobState.RUNNING:
                job.on_return = on_return
        return state

    def _work(self) -> None:
        jobs, lock = self.jobs, self.lock
        while True:
            job = jobs.get()
            if job is None:
                return
            with lock:
                if job.state is not JobState.QUEUED:     # given up on while queued
                    self.idle += 1
                    continue
                job.state = JobState.RUNNING
            try:
                job.result = job.fn(*job.args)
            except BaseException as exc:                 # a handler's SystemExit is its call's failure too
                job.error = exc
            job.fn = job.args = None                     # type: ignore[assignment]  # free the event early
            with lock:
                job.state = JobState.DONE
                on_return = job.on_return
                self.idle += 1
            if on_return is not None:
                on_return()
                continue
            self._hand_back(job)

    def _hand_back(self, job: Job) -> None:
        loop = job.loop
        if loop is not self.loop:                         # a job of another loop than the pool's first one
            self._call_soon(loop, self._settle, job)
            return
        self.finished.append(job)
        if not self.wake_pending:                         # the first since the loop last drained wakes it
            self.wake_pending = True
            self._call_soon(loop, self._deliver)

    @staticmethod
    def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):           # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(callback, *args)

    def _deliver(self) -> None:
        """On the loop: every finished job's result to its future (one wake-up for all of them)."""
        self.wake_pending = False                         # before draining: a job finishing now wakes us again
        finished = self.finished
        while finished:
            self._settle(finished.popleft())

    @staticmethod
    def _settle(job: Job) -> None:
        future = job.future
        if future.done():                                 # its caller gave up (cancelled)
            return
        if job.error is None:
            future.set_result(job.result)
        else:
            future.set_exception(job.error)
        job.result = job.error = None

    def shutdown(self) -> None:
        """No new jobs; queued ones never run (their callers get CancelledError); idle threads end, running
        ones end after their function returns."""
        if self.closed:
            return
        self.closed = True
        dropped: list[Job] = []
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and self.give_up(job, _nothing) is JobState.QUEUED:
                dropped.append(job)
        for _ in self.threads:
            self.jobs.put(None)
        for job in dropped:
            self._call_soon(job.loop, _cancel, job.future)


def _nothing() -> None:
    return None


def _cancel(future: asyncio.Future[Any]) -> None:
    future.cancel()
