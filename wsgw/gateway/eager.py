"""Run a coroutine's first step at once, in the caller's loop turn, and make a task only if it has to wait.

Most handler calls finish without waiting for anything (an async handler that computes its answer): a task per
message was a fifth of the gateway's own cost (loadtest/path_cost.py). Python 3.12's eager tasks do this inside
asyncio; on 3.11 it is done here, keeping what handlers rely on while the first step runs:

- `asyncio.current_task()` returns a `StandIn` for the task: `asyncio.timeout`, `TaskGroup` and the deadline
  watchdog capture it, and once the coroutine waits, a real task runs the rest and the stand-in forwards every
  cancel, `cancelling()` and `uncancel()` to it, so a timeout entered in the first step still fires later;
- the step runs in a copy of the context, as a task's would: a handler's context variables do not leak;
- an exception goes to the loop's exception handler, as an unretrieved task exception would, never into the
  caller (a protocol callback, which would drop the socket).

Called from inside a task (where the loop already has a current task) it just makes the task.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import types
from asyncio import current_task
from asyncio.tasks import _enter_task, _leave_task  # the loop's current-task slot (C speed; what Task uses)
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class StandIn:
    """What `asyncio.current_task()` returns during an eager first step: the task-to-be of one coroutine.

    Before the coroutine waits, a cancel is remembered (and delivered when it does); after, everything is the
    real task's. `done()` is true once the coroutine finished either way."""

    __slots__ = ("__weakref__", "_cancel_message", "_cancels", "_finished", "_loop", "_waiter", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.task: asyncio.Task[Any] | None = None
        self._cancels = 0
        self._cancel_message: Any | None = None
        self._finished = False
        self._waiter: asyncio.Future[None] | None = None

    def run(self, coro: Coroutine[Any, Any, Any]) -> None:
        """The first step now; the rest, if any, in a task (self.task) that starts on the next loop turn."""
        loop = self._loop
        context = contextvars.copy_context()
        if current_task(loop) is not None:   # inside a task: a step here would run as that task
            self._hand_over(loop.create_task(coro, context=context))
            return
        _enter_task(loop, self)  # type: ignore[arg-type]  # a Task to whoever asks current_task()
        try:
            yielded = context.run(coro.send, None)
        except StopIteration:
            self._finish()
            return
        except asyncio.CancelledError:
            self._finish()
            return
        except (KeyboardInterrupt, SystemExit):
            self._finish()
            raise
        except BaseException as exc:
            self._finish()
            loop.call_exception_handler({"message": "eagerly run coroutine failed", "exception": exc})
            return
        finally:
            _leave_task(loop, self)  # type: ignore[arg-type]
        self._hand_over(loop.create_task(_Resume(coro, yielded, self), context=context))

    def run_later(self, coro: Coroutine[Any, Any, Any]) -> None:
        """No eager step: the coroutine runs in a task from the start."""
        self._hand_over(self._loop.create_task(coro))

    def _hand_over(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        if self._waiter is not None:
            task.add_done_callback(self._task_done)

    def _task_done(self, _task: asyncio.Task[Any]) -> None:
        self._finish()

    def _finish(self) -> None:
        self._finished = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def completion(self) -> asyncio.Future[Any]:
        """A future done when the coroutine is (the real task once there is one)."""
        if self.task is not None:
            return self.task
        if self._waiter is None:
            self._waiter = self._loop.create_future()
            if self._finished:
                self._waiter.set_result(None)
        return self._waiter

    # ----- the Task interface handlers and asyncio use through current_task() ----------------------

    def cancel(self, msg: Any | None = None) -> bool:
        if self.task is not None:
            return self.task.cancel(msg)
        if self._finished:
            return False
        self._cancels += 1
        self._cancel_message = msg
        return True

    def cancelling(self) -> int:
        return self.task.cancelling() if self.task is not None else self._cancels

    def uncancel(self) -> int:
        if self.task is not None:
            return self.task.uncancel()
        if self._cancels > 0:
            self._cancels -= 1
        return self._cancels

    def done(self) -> bool:
        return self.task.done() if self.task is not None else self._finished

    def cancelled(self) -> bool:
        return self.task is not None and self.task.cancelled()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def get_name(self) -> str:
        return self.task.get_name() if self.task is not None else f"eager-{id(self):x}"

    def add_done_callback(self, fn: Callable[[asyncio.Future[Any]], object], *,
                          context: contextvars.Context | None = None) -> None:
        self.completion().add_done_callback(fn, context=context)

    def __repr__(self) -> str:
        return f"<StandIn {'for ' + repr(self.task) if self.task is not None else 'running eagerly'}>"


def first_step(coro: Coroutine[Any, Any, T]) -> tuple[bool, Any]:
    """Step a coroutine once in the running task: (True, its result) when it finished without waiting, else
    (False, what it yielded) — then `await resume(coro, yielded)` for the rest. The same task runs both parts,
    so this is `await coro` with a look at whether it had to wait (a caller can flush its writes first)."""
    try:
        return False, coro.send(None)
    except StopIteration as done:
        return True, done.value


@types.coroutine
def resume(coro: Coroutine[Any, Any, T], yielded: Any) -> Generator[Any, Any, T]:
    """The rest of a coroutine after `first_step` found it waiting on `yielded`."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as done:
                result: T = done.value
                return result
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as done:
                result = done.value
                return result


class _Resume(collections.abc.Coroutine[Any, Any, Any]):
    """The rest of an eagerly started coroutine, as the task runs it: the task's first step gets what the
    coroutine yielded in the eager step (the future it waits on), later steps go straight to the coroutine."""

    __slots__ = ("coro", "pending", "stand_in")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any, stand_in: StandIn) -> None:
        self.coro = coro
        self.pending: Any = yielded
        self.stand_in: StandIn | None = stand_in

    def _first(self) -> Any:
        """What the eager step yielded; cancels asked of the stand-in before the task existed are asked of the
        task now (it is running this step, so each is delivered as to a task that just yielded)."""
        yielded, self.pending = self.pending, None
        stand_in, self.stand_in = self.stand_in, None
        assert stand_in is not None
        if stand_in._cancels:
            task = asyncio.current_task()
            assert task is not None
            for _ in range(stand_in._cancels):
                task.cancel(stand_in._cancel_message)
        return yielded

    def send(self, value: Any) -> Any:
        if self.stand_in is None:
            return self.coro.send(value)
        return self._first()

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if self.stand_in is not None:
            # Cancelled between the hand-over and the task's first step: the coroutine waits on what it yielded,
            # so cancel that and let the task wake on it, as Task.cancel does to a waiting task.
            yielded = self._first()
            if isinstance(typ, asyncio.CancelledError) and isinstance(yielded, asyncio.Future) \
                    and yielded.cancel(typ.args[0] if typ.args else None):
                return yielded
        if val is None and tb is None:
            return self.coro.throw(typ)
        return self.coro.throw(typ, val, tb)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("the rest of an eager run is driven by its task only")
