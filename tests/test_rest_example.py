"""The example app's REST side (wsgw.yaml, handlers/rest.py) with real WebSocket and HTTP clients."""

from __future__ import annotations

import json

import aiohttp
from websockets.asyncio.client import connect

from tests.helpers import ROOT, eventually, serve
from wsgw.config import load_api


async def test_a_room_lists_who_is_in_it_and_a_post_reaches_every_member() -> None:
    async with serve(load_api(ROOT / "wsgw.yaml")) as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}/dev"

        async def names() -> object:
            async with http.get(f"{base}/rooms/lobby") as response:
                assert response.status == 200
                return (await response.json())["names"]

        async with connect(server.urls.websocket + "?name=ada&room=lobby") as ada, \
                connect(server.urls.websocket + "?name=bob&room=lobby") as bob:
            assert await names() == ["ada", "bob"]
            assert json.loads(await ada.recv())["principalId"] == "bob"          # bob's join notice
            async with http.post(f"{base}/rooms/lobby/messages", json={"from": "ops", "text": "deploy at 5"}) as r:
                assert r.status == 202
                assert await r.json() == {"room": "lobby", "delivered": 2}
            expected = {"type": "message", "room": "lobby", "from": "ops", "text": "deploy at 5"}
            for ws in (ada, bob):
                assert json.loads(await ws.recv()) == {"group": "room:lobby", "seq": 1, "data": expected}
            async with http.post(f"{base}/rooms/lobby/messages", json={"from": "ops"}) as r:
                assert r.status == 400 and "$.text" in (await r.json())["message"]
            async with http.post(f"{base}/rooms/no%20such/messages", json={"from": "ops", "text": "x"}) as r:
                assert r.status == 404
        await eventually(names, lambda n: n == [])          # both left: the room is empty
