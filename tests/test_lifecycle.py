"""$connect and $disconnect over real handshakes: refusals, subprotocols, every way a connection ends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import testapp
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers import management_client, serve, wait_for

# every test runs once per WebSocket frame engine (websockets, picows): same limits, codes and order
pytestmark = pytest.mark.usefixtures("ws_engine")

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:connect_by_query", "routeResponse": True},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    },
}


def disconnects() -> list[dict[str, Any]]:
    return testapp.events_of("$disconnect")


@pytest.mark.parametrize("status", [401, 403, 400, 301, 501])
async def test_connect_returning_non_2xx_refuses_handshake_with_that_status(status: int) -> None:
    async with serve(API) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.urls.websocket + f"?status={status}"):
                pass
        assert refused.value.response.status_code == status
        assert server.gateway.connections == {}
        assert disconnects() == []


@pytest.mark.parametrize("status", [100, 101, 199])
async def test_connect_returning_1xx_is_a_malformed_result_refused_with_502(status: int) -> None:
    async with serve(API) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.urls.websocket + f"?status={status}"):
                pass
        assert refused.value.response.status_code == 502
        assert server.gateway.connections == {}
        assert disconnects() == []


async def test_connect_handler_exception_refuses_with_502() -> None:
    async with serve(API) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.urls.websocket + "?raise=1"):
                pass
        assert refused.value.response.status_code == 502
        assert b"connect exploded" not in refused.value.response.body


async def test_connect_event_has_headers_query_and_identity() -> None:
    async with serve(API) as server, connect(server.urls.websocket + "?room=a&room=b&x=1",
                                             additional_headers={"X-Custom": "yes"}) as ws:
        await ws.send("hi")
        await ws.recv()
        event = testapp.events_of("$connect")[0]
        assert event["requestContext"]["eventType"] == "CONNECT"
        assert event["headers"]["X-Custom"] == "yes"
        assert event["queryStringParameters"] == {"room": "b", "x": "1"}
        assert event["multiValueQueryStringParameters"]["room"] == ["a", "b"]
        assert event["requestContext"]["connectionId"] == testapp.events_of("$default")[0]["requestContext"][
            "connectionId"]


async def test_subprotocol_is_accepted_only_when_connect_names_an_offered_one() -> None:
    async with serve(API) as server:
        async with connect(server.urls.websocket + "?protocol=chat.v2", subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
        async with connect(server.urls.websocket + "?protocol=other", subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol is None
        async with connect(server.urls.websocket) as ws:
            assert ws.subprotocol is None


async def test_connect_route_response_is_relayed_to_the_client() -> None:
    async with serve(API) as server, connect(server.urls.websocket + "?greet=1") as ws:
        assert await ws.recv() == "welcome"


async def test_post_during_connect_answers_410() -> None:
    async with serve(API) as server, connect(server.urls.websocket + "?post=1") as ws:
        await ws.send("after")
        assert await ws.recv() == "after"
        results = [e["result"] for e in testapp.events_of("post-during-connect")]
        assert results == ["410"]


async def test_disconnect_runs_once_with_client_close_code_and_reason() -> None:
    async with serve(API) as server:
        async with connect(server.urls.websocket) as ws:
            await ws.close(4001, "bye now")
        await wait_for(disconnects)
        (event,) = disconnects()
        ctx = event["requestContext"]
        assert ctx["eventType"] == "DISCONNECT"
        assert ctx["disconnectStatusCode"] == 4001
        assert ctx["disconnectReason"] == "bye now"
        assert server.gateway.connections == {}


async def test_disconnect_runs_with_1006_when_tcp_drops() -> None:
    async with serve(API) as server:
        ws = await connect(server.urls.websocket)
        await wait_for(lambda: server.gateway.connections)
        ws.transport.abort()
        await wait_for(disconnects)
        assert disconnects()[0]["requestContext"]["disconnectStatusCode"] == 1006


async def test_delete_connection_closes_socket_and_runs_disconnect() -> None:
    async with serve(API) as server, connect(server.urls.websocket) as ws:
        connection_id = next(iter(server.gateway.connections))
        client = management_client(server.urls.websocket.replace("ws://", "http://"))
        await asyncio.to_thread(client.delete_connection, ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        await wait_for(disconnects)
        assert disconnects()[0]["requestContext"]["disconnectStatusCode"] == 1000
        with pytest.raises(client.exceptions.GoneException):
            await asyncio.to_thread(client.delete_connection, ConnectionId=connection_id)


async def test_idle_connection_is_closed_with_1001_and_disconnect_runs() -> None:
    api = {**API, "limits": {"idleTimeoutSeconds": 0.3}}
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        await wait_for(disconnects)
        assert disconnects()[0]["requestContext"]["disconnectStatusCode"] == 1001


async def test_messages_keep_a_connection_from_going_idle() -> None:
    api = {**API, "limits": {"idleTimeoutSeconds": 0.6}}
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        for i in range(8):
            await ws.send(f"m{i}")
            assert await ws.recv() == f"m{i}"
            await asyncio.sleep(0.15)
        assert len(server.gateway.connections) == 1


async def test_connection_older_than_max_duration_is_closed() -> None:
    api = {**API, "limits": {"maxConnectionSeconds": 0.4}}
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    await ws.send("keep busy")
                    await ws.recv()
                    await asyncio.sleep(0.05)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        await wait_for(disconnects)


async def test_silent_peer_is_dropped_after_unanswered_ping() -> None:
    api = {**API, "limits": {"pingIntervalSeconds": 0.2, "pingTimeoutSeconds": 0.2}}
    async with serve(api) as server:
        # A raw TCP peer that completes the handshake and then never answers pings.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        await wait_for(disconnects, timeout=5)
        assert disconnects()[0]["requestContext"]["disconnectStatusCode"] == 1006
        writer.close()


async def test_protocol_error_ends_connection_and_runs_disconnect() -> None:
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"\x81\x05hello")          # an unmasked client frame: a protocol error
        await wait_for(disconnects)
        assert disconnects()[0]["requestContext"]["disconnectStatusCode"] == 1002
        writer.close()


async def test_server_shutdown_closes_with_1001_and_runs_every_disconnect() -> None:
    async with serve(API) as server:
        clients = [await connect(server.urls.websocket) for _ in range(5)]
        await wait_for(lambda: len(server.gateway.connections) == 5)
        await server.stop()
        codes = []
        for ws in clients:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
        assert codes == [1001] * 5
        assert sorted(e["requestContext"]["disconnectStatusCode"] for e in disconnects()) == [1001] * 5
        assert len({e["requestContext"]["connectionId"] for e in disconnects()}) == 5


async def test_shutdown_drops_queued_messages_counted_and_runs_disconnect_promptly() -> None:
    api = {"routes": {"$disconnect": {"handler": "testapp:ok"},
                      "$default": {"integration": {"type": "python", "handler": "testapp:hang", "timeoutMs": 1000}}}}
    async with serve(api) as server:
        ws = await connect(server.urls.websocket)
        for i in range(5):                     # one runs (and hangs), four wait behind it
            await ws.send(f"m{i}")
        await wait_for(lambda: testapp.events_of("$default"))
        await server.stop()
        assert server.gateway.metrics.value("wsgw_messages_dropped_total", reason="shutdown") == 4
        assert len(testapp.events_of("$default")) == 1
        assert [e["requestContext"]["disconnectStatusCode"] for e in disconnects()] == [1001]


async def test_refused_connect_answers_its_json_body_as_application_json() -> None:
    async with serve(API) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.urls.websocket + "?status=403"):
                pass
        response = refused.value.response
        assert response.status_code == 403
        assert response.headers["Content-Type"] == "application/json"
        assert isinstance(json.loads(response.body), dict)
