"""The gateway's lifecycle rules driven through a FakeSink: no sockets, no listener, only the SocketSink
interface (wsgw/gateway/sink.py) and the gateway's own entry points."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import testapp

from tests.helpers import api_from, wait_for
from wsgw.gateway import Clock, Connection, ConnectOutcome, Gateway
from wsgw.gateway.inbox import INBOX_HIGH_WATER, INBOX_LOW_WATER
from wsgw.headers import Headers
from wsgw.registry import MemoryRegistry
from wsgw.request import HttpRequest

ECHO: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:connect_by_query"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    },
}


class FakeSink:
    """A WebSocket as the gateway sees it. Like a real peer, it answers our close frame at once, and its end
    (close answered, abort, or the peer's own close) reaches Gateway.on_closed exactly once."""

    def __init__(self, gateway: Gateway, vanish_before_accept: bool = False) -> None:
        self.gateway = gateway
        self.vanish_before_accept = vanish_before_accept
        self.conn: Connection | None = None
        self.state = "connecting"
        self.subprotocol: str | None = None
        self.frames: list[str | bytes] = []
        self.close_sent: tuple[int, str] | None = None
        self.reading: list[str] = []             # "pause" / "resume", in the order the gateway asked
        self.pings = 0

    def accept(self, subprotocol: str | None) -> bool:
        if self.vanish_before_accept:
            self.state = "closed"
            return False
        self.state = "open"
        self.subprotocol = subprotocol
        return True

    def send(self, data: bytes | str) -> bool:
        if self.state != "open":
            return False
        self.frames.append(data)
        return True

    def send_encoded(self, frame: bytes) -> bool:
        if self.state != "open":
            return False
        self.frames.append(frame[2:])             # short unmasked frames in these tests: a 2-byte head
        return True

    def close(self, code: int, reason: str) -> None:
        if self.state == "open":
            self.state = "closing"
            self.close_sent = (code, reason)
            asyncio.get_running_loop().call_soon(self._lost, (code, reason))    # the peer echoes our close

    def abort(self) -> None:
        if self.state != "closed":
            asyncio.get_running_loop().call_soon(self._lost, None)

    def ping(self) -> None:
        self.pings += 1

    def pause_reading(self) -> None:
        self.reading.append("pause")

    def resume_reading(self) -> None:
        self.reading.append("resume")

    # ----- what the peer does ----------------------------------------------------------------------

    def peer_closes(self, code: int, reason: str) -> None:
        """The client sends a close frame; we answer it and the TCP connection ends."""
        if self.state == "open":
            self.state = "closing"
            self.close_sent = (code, reason)
            self._lost((code, reason))

    def say(self, data: str | bytes) -> None:
        assert self.conn is not None
        self.gateway.on_peer_activity(self.conn)
        self.gateway.on_message(self.conn, data)

    def _lost(self, received: tuple[int, str] | None) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        if self.conn is not None:
            self.gateway.on_closed(self.conn, received, self.close_sent)

    def texts(self) -> list[str]:
        return [f if isinstance(f, str) else f.decode() for f in self.frames]


class SteppedClock:
    """Both of the gateway's clocks, moved only by the test."""

    def __init__(self) -> None:
        self.monotonic = 1000.0
        self.epoch_ms = 1_700_000_000_000

    def clock(self) -> Clock:
        return Clock(monotonic=lambda: self.monotonic, epoch_ms=lambda: self.epoch_ms)


@asynccontextmanager
async def running(raw: dict[str, Any], clock: Clock | None = None) -> AsyncIterator[Gateway]:
    gateway = Gateway(api_from(raw), MemoryRegistry(), clock=clock)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.shutdown(grace_seconds=5)


async def connect(gateway: Gateway, query: str = "", **sink_options: Any) -> tuple[ConnectOutcome, FakeSink]:
    sink = FakeSink(gateway, **sink_options)
    hs = HttpRequest("GET", "/dev", query, Headers([("Host", "gw.test"), ("User-Agent", "fake")]), b"", "10.0.0.1",
                     domain_name="gw.test")
    outcome = await gateway.connect(hs, sink)
    sink.conn = outcome.conn
    return outcome, sink


def disconnects() -> list[tuple[int, str]]:
    return [(e["requestContext"]["disconnectStatusCode"], e["requestContext"]["disconnectReason"])
            for e in testapp.events_of("$disconnect")]


# ----- $connect --------------------------------------------------------------------------------------


async def test_connect_answered_2xx_writes_the_101_and_makes_the_connection_reachable() -> None:
    async with running(ECHO) as gateway:
        outcome, sink = await connect(gateway)
        assert outcome.status == 101 and outcome.conn is not None
        assert sink.state == "open"
        assert list(gateway.connections) == [outcome.conn.id]


async def test_connect_answered_non_2xx_refuses_with_that_status_and_registers_nothing() -> None:
    async with running(ECHO) as gateway:
        outcome, sink = await connect(gateway, "status=403")
        assert (outcome.status, outcome.conn, sink.state) == (403, None, "connecting")
        assert gateway.connections == {}
        assert disconnects() == []


async def test_connect_handler_that_throws_refuses_with_502() -> None:
    async with running(ECHO) as gateway:
        outcome, sink = await connect(gateway, "raise=1")
        assert (outcome.status, outcome.body, sink.state) == (502, "Internal server error", "connecting")
        assert gateway.connections == {}


async def test_connect_handler_past_its_timeout_refuses_with_504() -> None:
    raw = {"routes": {**ECHO["routes"], "$connect": {"integration": {"type": "python", "handler": "testapp:hang",
                                                                      "timeoutMs": 50}}}}
    async with running(raw) as gateway:
        outcome, sink = await connect(gateway)
        assert (outcome.status, outcome.body, sink.state) == (504, "Endpoint request timed out", "connecting")
        assert gateway.connections == {}


async def test_client_gone_before_the_101_is_not_admitted_and_gets_no_disconnect() -> None:
    async with running(ECHO) as gateway:
        outcome, _sink = await connect(gateway, vanish_before_accept=True)
        assert outcome.conn is None and gateway.connections == {}
    assert disconnects() == []


# ----- messages --------------------------------------------------------------------------------------


async def test_messages_of_one_connection_are_handled_in_arrival_order() -> None:
    raw = {"routes": {"$default": {"handler": "testapp:slow_echo", "routeResponse": True}}}
    async with running(raw) as gateway:
        _outcome, sink = await connect(gateway)
        sent = [json.dumps({"delay": 0.05 - i * 0.01, "n": i}) for i in range(5)]
        for body in sent:
            sink.say(body)
        await wait_for(lambda: len(sink.frames) == 5)
        assert sink.texts() == sent


async def test_route_response_is_sent_back_on_the_connection() -> None:
    async with running(ECHO) as gateway:
        _outcome, sink = await connect(gateway)
        sink.say("hello")
        await wait_for(lambda: sink.frames)
        assert sink.texts() == ["hello"]


async def test_message_without_a_route_gets_the_forbidden_frame() -> None:
    raw = {"routeSelectionExpression": "$request.body.action",
           "routes": {"known": {"handler": "testapp:echo", "routeResponse": True}}}
    async with running(raw) as gateway:
        outcome, sink = await connect(gateway)
        sink.say(json.dumps({"action": "unknown"}))
        await wait_for(lambda: sink.frames)
        frame = json.loads(sink.texts()[0])
        assert outcome.conn is not None
        assert (frame["message"], frame["connectionId"]) == ("Forbidden", outcome.conn.id)
        assert frame["requestId"]


async def test_handler_failure_sends_internal_server_error_and_the_connection_stays_open() -> None:
    raw = {"routeSelectionExpression": "$request.body.action",
           "routes": {"boom": {"handler": "testapp:fail", "routeResponse": True},
                      "$default": {"handler": "testapp:echo", "routeResponse": True}}}
    async with running(raw) as gateway:
        outcome, sink = await connect(gateway)
        sink.say(json.dumps({"action": "boom"}))
        await wait_for(lambda: sink.frames)
        assert json.loads(sink.texts()[0])["message"] == "Internal server error"
        assert "secret detail" not in sink.texts()[0]
        assert outcome.conn is not None and outcome.conn.id in gateway.connections
        sink.say("still here")
        await wait_for(lambda: len(sink.frames) == 2)
        assert sink.texts()[1] == "still here" and sink.state == "open"


async def test_reading_pauses_past_the_inbox_high_water_mark_and_resumes_at_the_low_one() -> None:
    raw = {"routes": {"$default": {"handler": "testapp:block_until_released"}}}
    async with running(raw) as gateway:
        outcome, sink = await connect(gateway)
        assert outcome.conn is not None
        conn = outcome.conn
        sink.say("first")                         # taken by the worker, which blocks in the handler
        await wait_for(lambda: testapp.events_of("$default"))
        for i in range(INBOX_HIGH_WATER):
            sink.say(f"m{i}")
        assert sink.reading == [] and len(conn.inbox) == INBOX_HIGH_WATER
        sink.say("one too many")
        assert sink.reading == ["pause"]
        testapp.RELEASE.set()
        await wait_for(lambda: sink.reading == ["pause", "resume"])
        assert len(conn.inbox) <= INBOX_LOW_WATER
        await wait_for(lambda: len(testapp.events_of("$default")) == INBOX_HIGH_WATER + 2)


# ----- the end of a connection -----------------------------------------------------------------------

LIMITED: dict[str, Any] = {**ECHO, "limits": {"idleTimeoutSeconds": 10, "maxConnectionSeconds": 20,
                                              "pingIntervalSeconds": 1000}}


async def _client_close(gateway: Gateway, sink: FakeSink, clock: SteppedClock) -> None:
    sink.peer_closes(1000, "bye")


async def _delete(gateway: Gateway, sink: FakeSink, clock: SteppedClock) -> None:
    assert sink.conn is not None and await gateway.delete(sink.conn.id)


async def _idle(gateway: Gateway, sink: FakeSink, clock: SteppedClock) -> None:
    clock.monotonic += 10
    gateway.sweep()


async def _max_age(gateway: Gateway, sink: FakeSink, clock: SteppedClock) -> None:
    for _ in range(4):                            # active all along: only the age can end it
        clock.monotonic += 5
        sink.say("x")
    gateway.sweep()


async def _shutdown(gateway: Gateway, sink: FakeSink, clock: SteppedClock) -> None:
    await gateway.shutdown(grace_seconds=5)


@pytest.mark.parametrize(("cause", "reported"), [
    (_client_close, (1000, "bye")),
    (_delete, (1000, "Connection Closed Normally")),
    (_idle, (1001, "Going away")),
    (_max_age, (1001, "Going away")),
    (_shutdown, (1001, "Going away")),
], ids=["client-close", "delete", "idle", "max-age", "shutdown"])
async def test_disconnect_runs_exactly_once_whatever_ends_the_connection(
        cause: Callable[[Gateway, FakeSink, SteppedClock], Any], reported: tuple[int, str]) -> None:
    clock = SteppedClock()
    async with running(LIMITED, clock.clock()) as gateway:
        _outcome, sink = await connect(gateway)
        await cause(gateway, sink, clock)
        await wait_for(lambda: disconnects())
        sink.peer_closes(1000, "late")            # every other way to end it, after the first
        sink.abort()
        assert sink.conn is not None
        gateway.on_closed(sink.conn, (1006, ""), None)
        assert not await gateway.delete(sink.conn.id)
        await asyncio.sleep(0)
        assert gateway.connections == {}
    assert disconnects() == [reported]


# ----- the monotonic clock ---------------------------------------------------------------------------


@pytest.mark.parametrize("step_days", [3, -3])
async def test_a_wall_clock_step_neither_closes_nor_keeps_idle_connections(step_days: int) -> None:
    clock = SteppedClock()
    async with running(LIMITED, clock.clock()) as gateway:
        _outcome, sink = await connect(gateway)
        clock.epoch_ms += step_days * 86_400_000
        gateway.sweep()
        assert sink.state == "open"
        clock.monotonic += 9.9
        gateway.sweep()
        assert sink.state == "open"
        clock.monotonic += 0.1
        gateway.sweep()
        assert sink.close_sent == (1001, "Going away")


@pytest.mark.parametrize("step_days", [3, -3])
async def test_a_wall_clock_step_neither_closes_nor_keeps_connections_past_their_maximum_age(
        step_days: int) -> None:
    clock = SteppedClock()
    async with running(LIMITED, clock.clock()) as gateway:
        _outcome, sink = await connect(gateway)
        for _ in range(3):
            clock.monotonic += 5
            clock.epoch_ms += step_days * 86_400_000
            sink.say("x")
            gateway.sweep()
            assert sink.close_sent is None
        clock.monotonic += 5
        sink.say("x")
        gateway.sweep()
        assert sink.close_sent == (1001, "Going away")


# ----- pushes ----------------------------------------------------------------------------------------


async def test_post_to_a_local_connection_is_delivered_and_to_an_unknown_one_is_gone() -> None:
    async with running(ECHO) as gateway:
        outcome, sink = await connect(gateway)
        assert outcome.conn is not None
        assert await gateway.post(outcome.conn.id, b"pushed") is True
        assert sink.texts() == ["pushed"]
        assert await gateway.post("nobody=", b"lost") is False
        sink.peer_closes(1000, "")
        assert await gateway.post(outcome.conn.id, b"too late") is False
        assert sink.texts() == ["pushed"]
