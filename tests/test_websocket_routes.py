"""Messages over real WebSockets: selection, route responses, errors, ordering, isolation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
import testapp
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import serve, wait_for

# every test runs once per WebSocket frame engine (websockets, picows): same limits, codes and order
pytestmark = pytest.mark.usefixtures("ws_engine")

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:ok"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:route_key", "routeResponse": True},
        "echo": {"handler": "testapp:echo", "routeResponse": True},
        "syncecho": {"handler": "testapp:sync_echo", "routeResponse": True},
        "fail": {"handler": "testapp:fail", "routeResponse": True},
        "garbage": {"handler": "testapp:garbage", "routeResponse": True},
        "hang": {"integration": {"type": "python", "handler": "testapp:hang", "timeoutMs": 1500}},
        "slow": {"handler": "testapp:slow_echo", "routeResponse": True},
        "quiet": {"handler": "testapp:echo"},
        "ctx": {"handler": "testapp:context_info", "routeResponse": True},
        "ping": {"integration": {"type": "mock", "response": '{"action": "pong", "id": "$context.connectionId"}'},
                 "routeResponse": True},
    },
}


def url(server: Any, path: str = "") -> str:
    return server.urls.websocket + path


async def test_route_selected_by_action_gets_its_route_response() -> None:
    async with serve(API) as server, connect(url(server)) as ws:
        await ws.send('{"action": "echo", "n": 1}')
        assert json.loads(await ws.recv()) == {"action": "echo", "n": 1}
        await ws.send('{"action": "syncecho", "n": 2}')
        assert json.loads(await ws.recv()) == {"action": "syncecho", "n": 2}


async def test_route_without_route_response_sends_nothing_back() -> None:
    async with serve(API) as server, connect(url(server)) as ws:
        await ws.send('{"action": "quiet"}')
        await ws.send('{"action": "echo", "after": true}')
        assert json.loads(await ws.recv()) == {"action": "echo", "after": True}
        assert [e["body"] for e in testapp.events_of("quiet")] == ['{"action": "quiet"}']


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"action": {"nested": 1}}', '{"other": 1}', '"str"',
                                  '{"action": "unknown-route"}', '{"action": null}'])
async def test_unselectable_or_unknown_messages_go_to_default(body: str) -> None:
    async with serve(API) as server, connect(url(server)) as ws:
        await ws.send(body)
        assert json.loads(await ws.recv()) == {"route": "$default"}


async def test_nested_and_template_selection_expressions_pick_routes() -> None:
    nested = {**API, "routeSelectionExpression": "$request.body.meta.kind",
              "routes": {"chat": {"handler": "testapp:route_key", "routeResponse": True}}}
    async with serve(nested) as server, connect(url(server)) as ws:
        await ws.send('{"meta": {"kind": "chat"}}')
        assert json.loads(await ws.recv()) == {"route": "chat"}
    template = {"routeSelectionExpression": "${request.body.service}/${request.body.action}",
                "routes": {"rooms/join": {"handler": "testapp:route_key", "routeResponse": True}}}
    async with serve(template) as server, connect(url(server)) as ws:
        await ws.send('{"service": "rooms", "action": "join"}')
        assert json.loads(await ws.recv()) == {"route": "rooms/join"}


async def test_unknown_route_without_default_gets_forbidden_frame_and_stays_open() -> None:
    api = {"routes": {"echo": {"handler": "testapp:echo", "routeResponse": True}}}
    async with serve(api) as server, connect(url(server)) as ws:
        await ws.send('{"action": "nope"}')
        frame = await ws.recv()
        assert isinstance(frame, str)
        assert frame.startswith('{"message": "Forbidden", "connectionId":"')
        parsed = orjson.loads(frame)
        assert set(parsed) == {"message", "connectionId", "requestId"}
        await ws.send('{"action": "echo"}')
        assert json.loads(await ws.recv()) == {"action": "echo"}


async def test_handler_exception_sends_internal_server_error_and_keeps_connection() -> None:
    async with serve(API) as server, connect(url(server)) as ws:
        await ws.send('{"action": "fail"}')
        frame = await ws.recv()
        assert isinstance(frame, str)
        parsed = orjson.loads(frame)
        assert parsed["message"] == "Internal server error"
        assert "secret detail" not in frame
        assert parsed["requestId"] == testapp.events_of("fail")[0]["requestContext"]["requestId"]
        await ws.send('{"action": "echo"}')
        assert json.loads(await ws.recv()) == {"action": "echo"}
        assert server.gateway.metrics.value("wsgw_integration_errors_total", kind="error") == 1


async def test_handler_returning_garbage_sends_internal_server_error() -> None:
    async with serve(API) as server, connect(url(server)) as ws:
        await ws.send('{"action": "garbage"}')
        assert orjson.loads(await ws.recv())["message"] == "Internal server error"
        await ws.send('{"action": "echo"}')
        assert json.loads(await ws.recv()) == {"action": "echo"}


async def test_messages_of_one_connection_reach_handlers_in_order() -> None:
    async with serve(API) as server, connect(url(server)) as ws:
        # Earlier messages sleep longer: any concurrency would reorder them.
        for i in range(20):
            await ws.send(json.dumps({"action": "slow", "i": i, "delay": (20 - i) / 1000}))
        received = [json.loads(await ws.recv())["i"] for _ in range(20)]
        assert received == list(range(20))


async def test_hanging_handler_delays_its_connection_only() -> None:
    async with serve(API) as server, connect(url(server)) as stuck, connect(url(server)) as free:
        await stuck.send('{"action": "hang"}')
        await stuck.send('{"action": "echo", "queued": true}')
        await wait_for(lambda: testapp.events_of("hang"))
        for i in range(5):
            await free.send(json.dumps({"action": "echo", "i": i}))
            assert json.loads(await free.recv()) == {"action": "echo", "i": i}
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await stuck.recv()
        assert all("queued" not in e["body"] for e in testapp.events_of("echo"))
        # After the integration timeout: AWS's timeout frame, then the queued message runs.
        timed_out = orjson.loads(await stuck.recv())
        assert timed_out["message"] == "Endpoint request timed out"
        assert json.loads(await stuck.recv()) == {"action": "echo", "queued": True}


async def test_mock_integration_fills_context_variables() -> None:
    async with serve(API) as server, connect(url(server)) as ws:
        await ws.send('{"action": "ping"}')
        reply = json.loads(await ws.recv())
        connection_id = next(iter(server.gateway.connections))
        assert reply == {"action": "pong", "id": connection_id}


async def test_handler_context_is_lambda_like() -> None:
    async with serve(API) as server, connect(url(server)) as ws:
        await ws.send('{"action": "ctx"}')
        info = json.loads(await ws.recv())
        assert info["function_name"] == "wsgw-dev-ctx"
        assert info["aws_request_id"] == info["requestId"]
        assert info["invoked_function_arn"] == "arn:aws:lambda:us-east-1:000000000000:function:wsgw-dev-ctx"
        assert 28_000 < info["remaining"] <= 29_000


async def test_message_event_carries_aws_fields() -> None:
    async with serve(API) as server, connect(url(server), user_agent_header="tester/1.0") as ws:
        await ws.send('{"action": "echo"}')
        await ws.recv()
        event = testapp.events_of("echo")[0]
        ctx = event["requestContext"]
        assert ctx["eventType"] == "MESSAGE"
        assert ctx["routeKey"] == "echo"
        assert ctx["connectionId"] in server.gateway.connections
        assert ctx["stage"] == "dev"
        assert ctx["domainName"] == f"127.0.0.1:{server.port}"
        assert ctx["identity"]["sourceIp"] == "127.0.0.1"
        assert ctx["messageDirection"] == "IN"
        assert event["isBase64Encoded"] is False
        assert "headers" not in event


async def test_binary_frame_is_refused_with_1003() -> None:
    async with serve(API) as server, connect(url(server)) as ws:
        await ws.send(b"\x00\x01binary")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


async def test_binary_frame_is_delivered_base64_when_opted_in() -> None:
    async with serve({**API, "isBase64Encoded": True}) as server, connect(url(server)) as ws:
        await ws.send(b'{"action": "quiet", "bin": "\xff"}'.replace(b'"\xff"', b'1') + b"\xff")
        await ws.send('{"action": "echo"}')
        await ws.recv()
        event = testapp.events_of("$default")[0] if testapp.events_of("$default") else testapp.events_of("quiet")[0]
        assert event["isBase64Encoded"] is True


async def test_hung_sync_handler_takes_at_most_its_max_hung_calls_of_threads() -> None:
    api = {"routes": {
        "stuck": {"integration": {"type": "python", "handler": "testapp:block_until_released", "timeoutMs": 100,
                                  "maxHungCalls": 3}, "routeResponse": True},
        "syncecho": {"handler": "testapp:sync_echo", "routeResponse": True},
    }}
    async with serve(api) as server:
        clients = [await connect(url(server)) for _ in range(5)]
        replies = []
        for ws in clients:                  # one each: a connection's messages would wait behind each other
            await ws.send('{"action": "stuck"}')
            replies.append(orjson.loads(await ws.recv())["message"])
        # three threads hang (their calls timed out); the next two are refused without taking a thread
        assert replies == ["Endpoint request timed out"] * 3 + ["Internal server error"] * 2
        assert len(testapp.events_of("stuck")) == 3
        await clients[0].send('{"action": "syncecho", "still": "served"}')
        assert json.loads(await clients[0].recv()) == {"action": "syncecho", "still": "served"}
        testapp.RELEASE.set()               # the hung calls return; the route takes calls again
        route = server.gateway.routes.routes["stuck"].integration
        await wait_for(lambda: route.hung == 0)          # type: ignore[attr-defined]
        await clients[1].send('{"action": "stuck"}')
        assert json.loads(await clients[1].recv()) == {"action": "stuck"}
        for ws in clients:
            await ws.close()


async def test_mock_response_is_a_template_over_context_and_stage_variables_keeping_punctuation() -> None:
    api = {"stageVariables": {"room": "lobby"}, "routes": {"say": {"integration": {
        "type": "mock", "response": "You are in $stageVariables.room, as $context.routeKey."},
        "routeResponse": True}}}
    async with serve(api) as server, connect(url(server)) as ws:
        await ws.send('{"action": "say", "text": "hi"}')
        assert await ws.recv() == "You are in lobby, as say."


async def test_an_internal_error_on_one_message_neither_stops_the_connection_nor_leaves_it_unread() -> None:
    async with serve(API) as server, connect(url(server)) as ws:
        table = server.gateway.routes
        real = table.route_for_parsed
        calls = {"n": 0}

        def flaky(document: object) -> Any:       # the third message meets an unexpected bug in routing
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("routing bug")
            return real(document)

        table.route_for_parsed = flaky           # type: ignore[method-assign]
        for i in range(100):                     # past the inbox high-water mark: reading pauses meanwhile
            await ws.send(json.dumps({"action": "echo", "i": i}))
        replies = [json.loads(await ws.recv()) for _ in range(100)]
        assert replies[2]["message"] == "Internal server error"
        assert [r["i"] for r in replies if "i" in r] == [i for i in range(100) if i != 2]
