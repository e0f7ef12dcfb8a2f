"""The @connections API through the real AWS SDK (boto3) and raw HTTP."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions
import pytest
from websockets.asyncio.client import connect

from tests.helpers import endpoint, management_client, raw_http, serve, wait_for

API: dict[str, Any] = {
    "routes": {
        "$default": {"handler": "testapp:echo", "routeResponse": True},
        "postback": {"handler": "testapp:post_back", "routeResponse": True},
    },
}


async def test_boto3_post_to_connection_delivers_one_frame() -> None:
    async with serve(API) as server, connect(server.urls.websocket) as ws:
        connection_id = next(iter(server.gateway.connections))
        client = management_client(endpoint(server))
        await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b'{"n": 1}')
        assert await ws.recv() == '{"n": 1}'
        await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"\xff\x00raw")
        assert await ws.recv() == b"\xff\x00raw"


async def test_post_to_gone_connection_raises_gone_exception() -> None:
    async with serve(API) as server:
        client = management_client(endpoint(server))
        with pytest.raises(client.exceptions.GoneException):
            await asyncio.to_thread(client.post_to_connection, ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")


async def test_post_after_client_closed_raises_gone_exception() -> None:
    async with serve(API) as server:
        async with connect(server.urls.websocket):
            connection_id = next(iter(server.gateway.connections))
        await wait_for(lambda: not server.gateway.connections)
        client = management_client(endpoint(server))
        with pytest.raises(client.exceptions.GoneException):
            await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"x")


async def test_get_connection_returns_times_and_identity_as_botocore_parses_them() -> None:
    async with serve(API) as server, connect(server.urls.websocket, user_agent_header="probe/2") as ws:
        connection_id = next(iter(server.gateway.connections))
        await ws.send("touch")
        await ws.recv()
        client = management_client(endpoint(server))
        info = await asyncio.to_thread(client.get_connection, ConnectionId=connection_id)
        assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "probe/2"}
        assert isinstance(info["ConnectedAt"], datetime)
        assert info["LastActiveAt"] >= info["ConnectedAt"]
        assert abs((datetime.now(UTC) - info["ConnectedAt"]).total_seconds()) < 60


async def test_get_connection_wire_keys_are_lower_camel_case() -> None:
    async with serve(API) as server, connect(server.urls.websocket):
        connection_id = next(iter(server.gateway.connections))
        reply = await raw_http(server.port, f"GET /dev/@connections/{connection_id} HTTP/1.1\r\nHost: x\r\n"
                               "Connection: close\r\n\r\n".encode())
        body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        assert set(body) == {"connectedAt", "lastActiveAt", "identity"}
        assert body["connectedAt"].endswith("Z")


async def test_percent_encoded_connection_id_is_decoded() -> None:
    async with serve(API) as server, connect(server.urls.websocket) as ws:
        connection_id = next(iter(server.gateway.connections))
        encoded = connection_id.replace("=", "%3D").replace("-", "%2D")
        reply = await raw_http(server.port, f"POST /dev/@connections/{encoded} HTTP/1.1\r\nHost: x\r\n"
                               "Content-Length: 2\r\nConnection: close\r\n\r\nhi".encode())
        assert reply.startswith(b"HTTP/1.1 200")
        assert await ws.recv() == "hi"


async def test_post_over_128_kib_returns_413_payload_too_large() -> None:
    async with serve(API) as server, connect(server.urls.websocket) as ws:
        connection_id = next(iter(server.gateway.connections))
        client = management_client(endpoint(server))
        with pytest.raises(botocore.exceptions.ClientError) as error:
            await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"x" * 131_073)
        assert error.value.response["Error"]["Code"] == "PayloadTooLargeException"
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
        # exactly the limit still goes through
        await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"y" * 131_072)
        assert len(await ws.recv()) == 131_072


@pytest.mark.parametrize("bad_id", ["has%20space", "a" * 200, "semi;colon", "%FF%FE"])
async def test_malformed_connection_id_returns_400_bad_request(bad_id: str) -> None:
    async with serve(API) as server:
        reply = await raw_http(server.port, f"POST /dev/@connections/{bad_id} HTTP/1.1\r\nHost: x\r\n"
                               "Content-Length: 1\r\nConnection: close\r\n\r\nx".encode())
        assert reply.startswith(b"HTTP/1.1 400")
        assert b"x-amzn-ErrorType: BadRequestException" in reply
        assert b"Invalid connectionId" in reply


async def test_delete_of_unknown_connection_raises_gone_exception() -> None:
    async with serve(API) as server:
        client = management_client(endpoint(server))
        with pytest.raises(client.exceptions.GoneException):
            await asyncio.to_thread(client.delete_connection, ConnectionId="AAAAAAAAAAAAAAA=")
        with pytest.raises(client.exceptions.GoneException):
            await asyncio.to_thread(client.get_connection, ConnectionId="AAAAAAAAAAAAAAA=")


async def test_sync_handler_posting_back_through_boto3_does_not_deadlock() -> None:
    async with serve(API) as server, connect(server.urls.websocket) as ws:
        await ws.send('{"action": "postback"}')
        frames = [await ws.recv(), await ws.recv()]
        assert frames[0] == 'pushed:{"action": "postback"}'
        assert json.loads(frames[1]) == {"sourceIp": "127.0.0.1"}


async def test_pushes_from_one_caller_arrive_in_order() -> None:
    async with serve(API) as server, connect(server.urls.websocket) as ws:
        connection_id = next(iter(server.gateway.connections))
        client = management_client(endpoint(server))

        def push_all() -> None:
            for i in range(50):
                client.post_to_connection(ConnectionId=connection_id, Data=str(i).encode())

        await asyncio.to_thread(push_all)
        assert [await ws.recv() for _ in range(50)] == [str(i) for i in range(50)]


async def test_management_api_refuses_sources_outside_allow_from_with_403() -> None:
    api = {**API, "management": {"allowFrom": ["10.0.0.0/8"]}}       # loopback is not in it
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        connection_id = next(iter(server.gateway.connections))
        client = management_client(endpoint(server))
        with pytest.raises(botocore.exceptions.ClientError) as error:
            await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"x")
        assert error.value.response["Error"]["Code"] == "ForbiddenException"
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        reply = await raw_http(server.port, b"POST /dev/@broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                               b"Connection: close\r\n\r\nx")
        assert reply.startswith(b"HTTP/1.1 403")
        await ws.send("still here")
        assert await ws.recv() == "still here"          # nothing was pushed


def test_management_allow_from_must_be_networks() -> None:
    from pathlib import Path

    from wsgw.config import parse_api
    from wsgw.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        parse_api({"management": {"allowFrom": ["not-a-net"]}}, Path("."))
    assert error.value.problems[0].key == "management.allowFrom"
