"""The inspector: `GET /{stage}/@inspect` (a page) and its management WebSocket `/{stage}/@inspect/ws`: it lists
this node's connections and groups, tails a connection's frames both ways and a group's publishes, sends a frame
to either, stays bounded, leaves nothing behind when it goes, and answers only within management.allowFrom."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.browser import headless_browser
from tests.helpers import ROOT, GatewayProcess, free_port, open_client, raw_http, serve, wait_for
from wsgw.client import AsyncHttpPusher
from wsgw.gateway.inspect import PREVIEW_BYTES, TappedSink, Watcher
from wsgw.server.app import GatewayServer

API: dict[str, Any] = {
    "routes": {"$default": {"handler": "testapp:echo", "routeResponse": True}},
    "groups": {"room:*": {"history": {"size": 10, "ttlSeconds": 60}, "envelope": True}},
}


class Inspector:
    """A management WebSocket and every message it was told."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.told: list[dict[str, Any]] = []
        self.task = asyncio.get_running_loop().create_task(self._read())
        self.next_id = 0

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                self.told.append(json.loads(raw))

    async def ask(self, **request: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        await self.ws.send(json.dumps({**request, "id": ident}))
        return dict(await wait_for(lambda: next((m for m in self.told if m.get("id") == ident), None)))

    def frames(self) -> list[dict[str, Any]]:
        return [m for m in self.told if m["type"] == "frame"]


@contextlib.asynccontextmanager
async def inspector(node: GatewayServer) -> AsyncIterator[Inspector]:
    async with connect(f"ws://127.0.0.1:{node.port}/dev/@inspect/ws") as ws:
        watching = Inspector(ws)
        yield watching
    with contextlib.suppress(Exception):
        await asyncio.wait_for(watching.task, 5)


async def test_the_page_is_served_to_management_callers() -> None:
    async with serve(API) as node, aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{node.port}/dev/@inspect") as response:
        assert response.status == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "/@inspect/ws" in await response.text()


async def test_it_lists_a_connection_and_tails_what_it_sends_and_receives() -> None:
    async with serve(API) as node:
        ws, cid = await open_client(node)
        async with inspector(node) as watching:
            first = await wait_for(lambda: next((m for m in watching.told if m["type"] == "snapshot"), None))
            assert [c["connectionId"] for c in first["connections"]] == [cid]
            assert first["connections"][0]["sourceIp"] == "127.0.0.1"
            assert (await watching.ask(op="tail", connectionId=cid))["type"] == "ok"
            await ws.send('{"hello": "gateway"}')
            assert await ws.recv() == '{"hello": "gateway"}'          # the route response, echoed
            await wait_for(lambda: len(watching.frames()) == 2)
            inbound, outbound = watching.frames()
            assert (inbound["direction"], inbound["connectionId"]) == ("in", cid)
            assert inbound["data"] == '{"hello": "gateway"}'
            assert (outbound["direction"], outbound["data"]) == ("out", '{"hello": "gateway"}')
            await ws.close()
            await wait_for(lambda: any(m["type"] == "closed" and m["connectionId"] == cid for m in watching.told))


async def test_it_sends_a_frame_to_a_connection_and_to_a_group() -> None:
    async with serve(API) as node, AsyncHttpPusher(f"http://127.0.0.1:{node.port}/dev") as pusher:
        ws, cid = await open_client(node)
        async with inspector(node) as watching:
            answer = await watching.ask(op="send", connectionId=cid, data="from the inspector")
            assert answer["type"] == "ok"
            assert await ws.recv() == "from the inspector"
            gone = await watching.ask(op="send", connectionId="bm9uZXhpc3Q=", data="x")
            assert (gone["type"], gone["message"]) == ("error", "that connection is gone")

            await pusher.join("room:a", cid)
            assert (await watching.ask(op="tail", group="room:a"))["type"] == "ok"
            sent = await watching.ask(op="send", group="room:a", data='{"n": 1}')
            assert sent["delivered"] == 1
            assert json.loads(await ws.recv()) == {"group": "room:a", "seq": 1, "data": {"n": 1}}
            await pusher.publish("room:a", '{"n": 2}')               # a publish from elsewhere is tailed too
            await wait_for(lambda: len(watching.frames()) == 2)
            assert [(f["group"], f["seq"]) for f in watching.frames()] == [("room:a", 1), ("room:a", 2)]
            snapshot = await watching.ask(op="snapshot")
            assert snapshot["groups"] == [{"group": "room:a", "localMembers": 1}]
            assert snapshot["connections"][0]["groups"] == ["room:a"]
            presence = await watching.ask(op="presence", group="room:a")
            assert [m["connectionId"] for m in presence["members"]] == [cid]
        await ws.close()


async def test_nothing_is_left_on_the_hot_path_once_the_inspector_goes() -> None:
    async with serve(API) as node:
        ws, cid = await open_client(node)
        conn = node.gateway.local.get(cid)
        assert conn is not None
        plain = conn.sink
        async with inspector(node) as watching:
            await watching.ask(op="tail", connectionId=cid)
            await watching.ask(op="tail", group="room:b")
            assert isinstance(conn.sink, TappedSink) and conn.tap is not None
            assert node.gateway.groups.taps
        await wait_for(lambda: not node.router.inspector.sockets)
        assert conn.sink is plain and conn.tap is None
        assert node.gateway.groups.taps == {}
        await ws.close()


async def test_bad_requests_are_answered_and_the_socket_stays() -> None:
    async with serve(API) as node, inspector(node) as watching:
        assert (await watching.ask(op="fly"))["type"] == "error"
        assert "no such connection" in (await watching.ask(op="tail", connectionId="bm9uZXhpc3Q="))["message"]
        assert (await watching.ask(op="tail", group="bad group"))["type"] == "error"
        assert (await watching.ask(op="send", group="room:x"))["message"].startswith("data:")
        await watching.ws.send("not json")
        await wait_for(lambda: any(m["type"] == "error" and "id" not in m for m in watching.told))
        assert (await watching.ask(op="snapshot"))["type"] == "snapshot"


def test_a_watcher_queue_is_bounded_and_counts_what_it_dropped() -> None:
    woken: list[int] = []
    watcher = Watcher(lambda: woken.append(1), limit=3)
    for n in range(5):
        watcher.put({"n": n})
    assert [e["n"] for e in watcher.events] == [2, 3, 4]
    assert watcher.dropped == 2 and len(woken) == 5


async def test_long_frames_are_cut_for_the_inspector_not_for_the_client() -> None:
    async with serve(API) as node:
        ws, cid = await open_client(node)
        async with inspector(node) as watching:
            await watching.ask(op="tail", connectionId=cid)
            big = "x" * (PREVIEW_BYTES + 100)
            await ws.send(big)
            assert await ws.recv() == big
            await wait_for(lambda: len(watching.frames()) == 2)
            assert all(f["truncated"] and len(f["data"]) == PREVIEW_BYTES for f in watching.frames())
        await ws.close()


async def test_outside_allow_from_the_page_and_the_socket_are_refused() -> None:
    api = {**API, "management": {"allowFrom": ["10.0.0.0/8"]}}       # loopback is not in it
    async with serve(api) as node:
        page = await raw_http(node.port, b"GET /dev/@inspect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert page.startswith(b"HTTP/1.1 403")
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{node.port}/dev/@inspect/ws"):
                pass
        assert refused.value.response.status_code == 403
        assert not node.router.inspector.sockets


def test_the_page_lists_tails_and_sends_in_a_browser() -> None:
    """The inspector page itself, in chromium, against a `wsgw run` of the example API."""
    from playwright.sync_api import expect
    from websockets.sync.client import connect as connect_sync

    with GatewayProcess(ROOT / "wsgw.yaml", port=free_port()) as node, headless_browser() as browser, \
            connect_sync(f"{node.ws_url}?name=ada") as client:
        client.send('{"action": "hello"}')
        cid = json.loads(client.recv(timeout=5))["connectionId"]
        page = browser.new_page()
        page.goto(f"{node.http_url}/@inspect")
        expect(page.get_by_test_id("status")).to_have_text("connected")
        expect(page.get_by_test_id("connections")).to_contain_text(cid)
        expect(page.get_by_test_id("connections")).to_contain_text("ada")
        page.get_by_test_id(f"tail-{cid}").click()
        expect(page.get_by_test_id("log")).to_contain_text(f"tail {cid}")
        client.send('{"action": "echo", "n": 7}')
        assert json.loads(client.recv(timeout=5)) == {"action": "echo", "n": 7}
        expect(page.get_by_test_id("log")).to_contain_text('"n": 7')
        page.get_by_test_id("target").fill(cid)
        page.get_by_test_id("frame").fill('{"type": "notice", "text": "from the page"}')
        page.get_by_test_id("send").click()
        assert json.loads(client.recv(timeout=5)) == {"type": "notice", "text": "from the page"}
