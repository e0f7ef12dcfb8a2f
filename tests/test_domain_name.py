"""requestContext.domainName can't be set by the client: handlers post to it (AWS's samples do)."""

from __future__ import annotations

from typing import Any

import pytest
import testapp
from websockets.asyncio.client import connect

from tests.helpers import serve, wait_for
from wsgw.server.listener import trusted_domain

API: dict[str, Any] = {"routes": {"$connect": {"handler": "testapp:ok"},
                                  "$default": {"handler": "testapp:echo", "routeResponse": True}}}


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1:8080", "127.0.0.1:8080"),
    ("localhost:8080", "localhost:8080"),
    ("LOCALHOST:8080", "LOCALHOST:8080"),
    ("evil.example:8080", "127.0.0.1:8080"),
    ("169.254.169.254:80", "127.0.0.1:8080"),
    ("127.0.0.1:9999", "127.0.0.1:8080"),
    ("localhost", "127.0.0.1:8080"),
    ("[::1]:8080", "[::1]:8080"),
    (None, "127.0.0.1:8080"),
    ("", "127.0.0.1:8080"),
])
def test_host_header_is_kept_only_when_it_names_this_node(host: str | None, expected: str) -> None:
    assert trusted_domain(host, ("127.0.0.1", 8080), None) == expected


def test_configured_domain_name_wins() -> None:
    assert trusted_domain("evil.example:1", ("10.0.0.5", 8080), "chat.example.com") == "chat.example.com"


async def test_client_chosen_host_does_not_reach_handlers_events() -> None:
    async with serve(API) as server:
        async with connect(server.urls.websocket, additional_headers={"Host": "169.254.169.254:80"}) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        await wait_for(lambda: testapp.events_of("$default"))
        for event in testapp.events_of("$connect") + testapp.events_of("$default"):
            assert event["requestContext"]["domainName"] == f"127.0.0.1:{server.port}"


async def test_configured_domain_name_reaches_events() -> None:
    async with serve({**API, "domainName": "chat.example.com"}) as server, connect(server.urls.websocket) as ws:
        await ws.send("hi")
        await ws.recv()
        assert testapp.events_of("$default")[0]["requestContext"]["domainName"] == "chat.example.com"
