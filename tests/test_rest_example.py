"""The example app's REST side (wsgw.yaml, handlers/rest.py) with real WebSocket and HTTP clients."""

from __future__ import annotations

import json

import aiohttp
import pytest
from websockets.asyncio.client import connect

from handlers import chat
from tests.helpers import ROOT, serve, wait_for
from wsgw.config import load_api


async def test_rooms_lists_who_is_in_the_chat_and_a_post_reaches_every_member(monkeypatch: pytest.MonkeyPatch) -> None:
    # the chat pushes with boto3, which wants some credentials and a region (never the instance metadata service)
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    async with serve(load_api(ROOT / "wsgw.yaml")) as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}/dev"
        async with connect(server.urls.websocket + "?name=ada") as ada, \
                connect(server.urls.websocket + "?name=bob") as bob:
            await ada.send(json.dumps({"action": "join"}))
            assert json.loads(await ada.recv()) == {"type": "joined", "name": "ada"}
            await bob.send(json.dumps({"action": "join"}))
            for ws in (ada, bob):
                assert json.loads(await ws.recv()) == {"type": "joined", "name": "bob"}
            async with http.get(f"{base}/rooms") as response:
                assert response.status == 200
                assert await response.json() == {"rooms": {"lobby": ["ada", "bob"]}}
            async with http.post(f"{base}/rooms/lobby/messages", json={"from": "ops", "text": "deploy at 5"}) as r:
                assert r.status == 202
                assert await r.json() == {"room": "lobby", "delivered": 2}
            expected = {"type": "message", "from": "ops", "text": "deploy at 5"}
            for ws in (ada, bob):
                assert json.loads(await ws.recv()) == expected
            async with http.post(f"{base}/rooms/lobby/messages", json={"from": "ops"}) as r:
                assert r.status == 400 and "$.text" in (await r.json())["message"]
            async with http.post(f"{base}/rooms/kitchen/messages", json={"from": "ops", "text": "x"}) as r:
                assert r.status == 404
        await wait_for(lambda: not chat.ROOM)                    # both left ($disconnect ran): the room is empty
        async with http.get(f"{base}/rooms") as response:
            assert await response.json() == {"rooms": {"lobby": []}}
