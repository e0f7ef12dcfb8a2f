"""A message's handler runs its first step at once (wsgw/gateway/eager.py): what a handler relies on must hold on
both paths — answered in the same turn when it does not wait, continued by a task when it does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import eagerapp

from tests.helpers import wait_for
from tests.test_gateway_fake import FakeSink, connect, running
from wsgw.gateway.eager import StandIn


def routes(handler: str, timeout_ms: int | None = None) -> dict[str, Any]:
    integration: dict[str, Any] = {"type": "python", "handler": f"eagerapp:{handler}"}
    if timeout_ms is not None:
        integration["timeoutMs"] = timeout_ms
    return {"routes": {"$default": {"integration": integration, "routeResponse": True}}}


async def say_from_callback(sink: FakeSink, *bodies: str) -> list[str]:
    """Messages arriving as a socket's data_received delivers them (a loop callback, not a task); the frames
    sent back by the time that callback returned."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[list[str]] = loop.create_future()

    def data_received() -> None:
        for body in bodies:
            sink.say(body)
        answered.set_result(sink.texts())

    loop.call_soon(data_received)
    return await answered


async def test_a_handler_that_does_not_wait_answers_before_on_message_returns() -> None:
    async with running(routes("maybe_wait")) as gateway:
        _outcome, sink = await connect(gateway)
        assert await say_from_callback(sink, json.dumps({"n": 1})) == [json.dumps({"n": 1})]


async def test_messages_keep_their_order_when_some_handlers_wait_and_others_do_not() -> None:
    async with running(routes("maybe_wait")) as gateway:
        connections = [await connect(gateway) for _ in range(5)]
        sent: dict[int, list[str]] = {}
        for round_ in range(8):
            for i, (_outcome, sink) in enumerate(connections):
                waits = (round_ + i) % 3
                body = json.dumps({"n": round_, "turns": waits, "sleep": 0.005 if waits == 2 else 0})
                sent.setdefault(i, []).append(body)
                if round_ % 3:
                    await say_from_callback(sink, body)
                else:
                    sink.say(body)              # from a task: no eager step, a task from the start
            if round_ % 2:
                await asyncio.sleep(0)         # some arrive while an earlier one waits, some after it finished
        await wait_for(lambda: all(len(sink.frames) == 8 for _o, sink in connections))
        for i, (_outcome, sink) in enumerate(connections):
            assert sink.texts() == sent[i]


async def test_asyncio_timeout_entered_in_the_eager_step_fires_after_the_handler_waits() -> None:
    async with running(routes("own_timeout", timeout_ms=5000)) as gateway:
        _outcome, sink = await connect(gateway)
        await say_from_callback(sink, "go")
        await wait_for(lambda: sink.frames)
        assert json.loads(sink.texts()[0]) == {"timedOut": True, "cancelling": 0}


async def test_asyncio_timeout_left_within_the_eager_step_changes_nothing() -> None:
    async with running(routes("own_timeout_unused")) as gateway:
        _outcome, sink = await connect(gateway)
        assert [json.loads(t) for t in await say_from_callback(sink, "go")] == [{"total": 45}]


async def test_a_task_group_in_a_handler_cancels_and_reports_its_failed_child() -> None:
    async with running(routes("task_group", timeout_ms=5000)) as gateway:
        _outcome, sink = await connect(gateway)
        await say_from_callback(sink, "go")
        await wait_for(lambda: sink.frames)
        assert json.loads(sink.texts()[0]) == {"group": "child error seen"}


async def test_a_cancel_asked_before_the_first_wait_reaches_that_wait_once() -> None:
    async with running(routes("cancel_self", timeout_ms=5000)) as gateway:
        _outcome, sink = await connect(gateway)
        await say_from_callback(sink, "go")
        await wait_for(lambda: sink.frames)
        assert json.loads(sink.texts()[0]) == {"cancelled": "by the handler", "cancelling": 0}


async def test_the_route_timeout_still_fires_for_a_handler_that_waits_forever() -> None:
    async with running(routes("hang", timeout_ms=100)) as gateway:
        _outcome, sink = await connect(gateway)
        await say_from_callback(sink, "one", "two")    # "two" waits behind the hung one, then hangs too
        await wait_for(lambda: len(sink.frames) == 2)
        assert [json.loads(t)["message"] for t in sink.texts()] == ["Endpoint request timed out"] * 2


async def test_context_variables_a_handler_sets_stay_out_of_the_socket_callback_and_the_next_message() -> None:
    async with running(routes("context_var")) as gateway:
        _outcome, sink = await connect(gateway)
        loop = asyncio.get_running_loop()
        after: asyncio.Future[str | None] = loop.create_future()

        def data_received(body: str) -> None:
            sink.say(body)
            if body == "c":
                after.set_result(eagerapp.SEEN.get())

        for body in ("a", "b", "c"):
            loop.call_soon(data_received, body)
        assert await after is None
        assert [json.loads(t)["found"] for t in sink.texts()] == [None, None, None]


async def test_a_handler_failing_in_its_first_step_gets_the_error_frame_and_the_next_message_runs() -> None:
    raw = {"routeSelectionExpression": "$request.body.action",
           "routes": {"fail": {"handler": "eagerapp:raises", "routeResponse": True},
                      "echo": {"handler": "eagerapp:maybe_wait", "routeResponse": True}}}
    async with running(raw) as gateway:
        _outcome, sink = await connect(gateway)
        texts = await say_from_callback(sink, json.dumps({"action": "fail"}), json.dumps({"action": "echo"}))
        assert json.loads(texts[0])["message"] == "Internal server error"
        assert texts[1] == json.dumps({"action": "echo"})


async def test_disconnect_waits_for_a_message_that_is_still_waiting() -> None:
    async with running(routes("maybe_wait")) as gateway:
        _outcome, sink = await connect(gateway)
        await say_from_callback(sink, json.dumps({"sleep": 0.05}))
        sink.peer_closes(1000, "bye")
        assert sink.frames == []
        await gateway.shutdown(grace_seconds=5)
        assert sink.texts() == []              # the socket had closed: the route response is not sent
        assert not gateway.workers


# ----- the stand-in on its own -------------------------------------------------------------------------


async def test_stand_in_is_the_current_task_during_the_first_step_and_the_task_after() -> None:
    loop = asyncio.get_running_loop()
    seen: list[object] = []

    async def body() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    def from_a_callback() -> None:
        stand_in = StandIn(loop)
        stand_in.run(body())
        seen.append(stand_in)

    loop.call_soon(from_a_callback)
    await wait_for(lambda: len(seen) == 3)
    stand_in = seen[1]
    assert isinstance(stand_in, StandIn)
    assert seen[0] is stand_in and seen[2] is stand_in.task
    await stand_in.completion()
    assert stand_in.done()


async def test_stand_in_inside_a_task_makes_a_task_without_an_eager_step() -> None:
    ran: list[str] = []

    async def body() -> None:
        ran.append("ran")

    stand_in = StandIn(asyncio.get_running_loop())
    stand_in.run(body())                       # this test is a task: no eager step here
    assert ran == [] and stand_in.task is not None
    await stand_in.completion()
    assert ran == ["ran"]


async def test_an_exception_of_the_eager_step_goes_to_the_loop_handler_not_the_caller() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def body() -> None:
        raise ValueError("boom")

    def from_a_callback() -> None:
        stand_in = StandIn(loop)
        stand_in.run(body())
        assert stand_in.done() and stand_in.task is None

    try:
        loop.call_soon(from_a_callback)
        await wait_for(lambda: reported)
        assert isinstance(reported[0]["exception"], ValueError)
    finally:
        loop.set_exception_handler(None)
