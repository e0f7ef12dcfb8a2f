"""The threads sync handlers run in (wsgw/integrations/handler_pool.py): results and errors come back to the loop,
a burst of results costs one wake-up, a call given up on while queued never runs, and one given up on while
running is reported until its function returns."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import wait_for, wait_for_sync
from wsgw.integrations.handler_pool import HandlerPool, JobState


@pytest.fixture
def pool() -> Iterator[HandlerPool]:
    made = HandlerPool(max_threads=4, name="test-pool")
    yield made
    made.shutdown()


async def test_results_and_exceptions_reach_the_awaiting_caller(pool: HandlerPool) -> None:
    def fails() -> None:
        raise ValueError("from the thread")

    assert await pool.submit(lambda x: x * 2, 21).future == 42
    with pytest.raises(ValueError, match="from the thread"):
        await pool.submit(fails).future


async def test_results_finished_while_the_loop_was_busy_are_handed_back_with_one_wake_up(pool: HandlerPool) -> None:
    wake_ups: list[object] = []
    call_soon = pool._call_soon

    def counting(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
        wake_ups.append(callback)
        call_soon(loop, callback, *args)

    pool._call_soon = counting  # type: ignore[method-assign]
    jobs = [pool.submit(lambda n: n, n) for n in range(20)]
    wait_for_sync(lambda: len(pool.finished) == 20)       # the loop does not run meanwhile
    assert [await job.future for job in jobs] == list(range(20))
    assert len(wake_ups) == 1


async def test_threads_are_made_as_calls_need_them_up_to_the_limit(pool: HandlerPool) -> None:
    release = threading.Event()
    jobs = [pool.submit(release.wait, 10) for _ in range(6)]
    wait_for_sync(lambda: sum(job.state is JobState.RUNNING for job in jobs) == 4)
    assert len(pool.threads) == 4                          # the other two wait for a thread
    release.set()
    assert await asyncio.gather(*(job.future for job in jobs)) == [True] * 6
    assert len(pool.threads) == 4


async def test_a_call_given_up_on_while_queued_never_runs(pool: HandlerPool) -> None:
    release = threading.Event()
    ran: list[str] = []
    blockers = [pool.submit(release.wait, 10) for _ in range(4)]
    queued = pool.submit(ran.append, "ran")
    assert pool.give_up(queued, lambda: None) is JobState.QUEUED
    release.set()
    await asyncio.gather(*(job.future for job in blockers))
    after = pool.submit(ran.append, "after")              # the same threads, so the given-up call was passed by
    await after.future
    assert ran == ["after"]


async def test_a_call_given_up_on_while_running_reports_when_its_function_returns(pool: HandlerPool) -> None:
    release = threading.Event()
    returned = threading.Event()
    job = pool.submit(release.wait, 10)
    wait_for_sync(lambda: job.state is JobState.RUNNING)
    assert pool.give_up(job, returned.set) is JobState.RUNNING
    job.future.cancel()
    assert not returned.is_set()
    release.set()
    await wait_for(returned.is_set)


async def test_shutdown_cancels_queued_calls_and_refuses_new_ones() -> None:
    pool = HandlerPool(max_threads=1)
    release = threading.Event()
    running = pool.submit(release.wait, 10)
    queued = pool.submit(lambda: "never")
    wait_for_sync(lambda: running.state is JobState.RUNNING)
    pool.shutdown()
    with pytest.raises(asyncio.CancelledError):
        await queued.future
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)
    release.set()
    assert await running.future is True
