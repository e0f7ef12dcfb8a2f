"""Shared behaviour of every integration: isolation between connections, order within one, the bounded
inbox, and throttling (stage, route, per connection) with AWS's frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.backends import backend
from tests.helpers import serve, wait_for


def proxy(uri: str, **extra: Any) -> dict[str, Any]:
    return {"integration": {"type": "http_event", "uri": uri, **extra}, "routeResponse": True}


async def test_ten_hung_connections_do_not_delay_ten_others() -> None:
    async with backend() as b:
        api = {"routes": {"hang": proxy(f"{b.url}/proxy/hang"), "echo": proxy(f"{b.url}/proxy/echo")}}
        async with serve(api) as server:
            stuck = [await connect(server.urls.websocket) for _ in range(10)]
            free = [await connect(server.urls.websocket) for _ in range(10)]
            try:
                for ws in stuck:
                    await ws.send('{"action": "hang"}')
                await wait_for(lambda: len(b.hits("/proxy/hang")) == 10)

                async def round_trips(ws: ClientConnection, who: int) -> None:
                    for i in range(5):
                        await ws.send(json.dumps({"action": "echo", "who": who, "i": i}))
                        assert json.loads(await ws.recv()) == {"action": "echo", "who": who, "i": i}

                async with asyncio.timeout(10):
                    await asyncio.gather(*(round_trips(ws, n) for n, ws in enumerate(free)))
                assert len(b.hits("/proxy/echo")) == 50
                b.release.set()                   # the hung ones finish afterwards, each with its own answer
                for ws in stuck:
                    assert await ws.recv() == "released"
            finally:
                for ws in stuck + free:
                    await ws.close()


async def test_messages_stay_in_order_under_a_slow_backend() -> None:
    async with backend() as b, serve({"routes": {"slow": proxy(f"{b.url}/proxy/slow")}}) as server, \
            connect(server.urls.websocket) as ws:
        # Earlier messages take longer: any concurrency within the connection would reorder them.
        for i in range(15):
            await ws.send(json.dumps({"action": "slow", "i": i, "delay": (15 - i) / 500}))
        assert [json.loads(await ws.recv())["i"] for _ in range(15)] == list(range(15))
        assert [json.loads(s.json()["body"])["i"] for s in b.hits("/proxy/slow")] == list(range(15))


async def test_full_inbox_answers_too_many_requests_and_keeps_the_connection() -> None:
    async with backend() as b:
        api = {"routes": {"hang": proxy(f"{b.url}/proxy/hang"), "echo": proxy(f"{b.url}/proxy/echo")},
               "limits": {"maxQueuedMessages": 3}}
        async with serve(api) as server, connect(server.urls.websocket) as ws:
            await ws.send('{"action": "hang"}')
            await wait_for(lambda: b.hits("/proxy/hang"))          # in flight, out of the inbox
            for i in range(3):
                await ws.send(json.dumps({"action": "echo", "queued": i}))
            await ws.send('{"action": "echo", "overflow": true}')
            frame = await ws.recv()
            assert isinstance(frame, str)
            assert frame.startswith('{"message": "Too Many Requests", "connectionId":"')
            assert set(orjson.loads(frame)) == {"message", "connectionId", "requestId"}
            assert server.gateway.metrics.value("wsgw_integration_errors_total", kind="queue_full") == 1
            b.release.set()
            assert await ws.recv() == "released"
            assert [json.loads(await ws.recv())["queued"] for _ in range(3)] == [0, 1, 2]
            assert all("overflow" not in s.json()["body"] for s in b.hits("/proxy/echo"))


async def send_until_answered(ws: ClientConnection, message: str, timeout: float = 5.0) -> int:
    """Resend until the answer is not the throttle frame; returns how many refusals came first."""
    refused = 0
    async with asyncio.timeout(timeout):
        while True:
            await ws.send(message)
            reply = orjson.loads(await ws.recv())
            if reply.get("message") != "Too Many Requests":
                return refused
            refused += 1
            await asyncio.sleep(0.02)      # pace the retries; recovery itself is what is awaited


PONG = {"integration": {"type": "mock", "response": '{"pong": true}'}, "routeResponse": True}


async def test_route_throttle_refuses_over_burst_then_recovers() -> None:
    api = {"routes": {"ping": {**PONG, "throttling": {"rateLimit": 2, "burstLimit": 2}}, "free": PONG}}
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        replies = []
        for _ in range(4):
            await ws.send('{"action": "ping"}')
        for _ in range(4):
            replies.append(orjson.loads(await ws.recv()))
        assert replies[:2] == [{"pong": True}] * 2
        assert all(r.get("message") == "Too Many Requests" and set(r) == {"message", "connectionId", "requestId"}
                   for r in replies[2:])
        for _ in range(5):                                  # other routes have no bucket of their own
            await ws.send('{"action": "free"}')
            assert orjson.loads(await ws.recv()) == {"pong": True}
        await send_until_answered(ws, '{"action": "ping"}')    # tokens refill at rateLimit per second
        assert server.gateway.metrics.value("wsgw_throttled_total", scope="route") >= 2


async def test_stage_throttle_applies_to_every_route_and_to_connect() -> None:
    api = {"throttling": {"rateLimit": 0.1, "burstLimit": 3}, "routes": {"ping": PONG}}
    # $connect takes the first of the stage's 3 tokens, two pings the others.
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        for _ in range(3):
            await ws.send('{"action": "ping"}')
        replies = [orjson.loads(await ws.recv()) for _ in range(3)]
        assert replies[:2] == [{"pong": True}] * 2
        assert replies[2]["message"] == "Too Many Requests"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.urls.websocket):
                pass
        assert refused.value.response.status_code == 429


async def test_per_connection_rate_throttles_one_connection_only() -> None:
    api = {"routes": {"ping": PONG}, "limits": {"maxMessagesPerSecond": 2, "messageBurst": 2}}
    async with serve(api) as server, connect(server.urls.websocket) as noisy, \
            connect(server.urls.websocket) as quiet:
        for _ in range(3):
            await noisy.send('{"action": "ping"}')
        replies = [orjson.loads(await noisy.recv()) for _ in range(3)]
        # Refused at arrival, so its frame may overtake the answers to the two admitted messages.
        assert sorted(r.get("message", "") for r in replies) == ["", "", "Too Many Requests"]
        assert replies.count({"pong": True}) == 2
        await quiet.send('{"action": "ping"}')
        assert orjson.loads(await quiet.recv()) == {"pong": True}
        await send_until_answered(noisy, '{"action": "ping"}')
        assert server.gateway.metrics.value("wsgw_throttled_total", scope="connection") >= 1
    await wait_for(lambda: not server.gateway.throttle.connections)    # buckets are dropped with connections
