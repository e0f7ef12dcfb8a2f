"""The example chat (wsgw.yaml, handlers/chat.py, handlers/rest.py) as a user runs it: rooms on groups across two
real nodes sharing Redis, a rejoin that replays what was missed, and `wsgw run --workers 2`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import ROOT, GatewayProcess, eventually

# boto3 (the whisper's post_to_connection) wants credentials and a region, never the instance metadata service
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
CONFIG = ROOT / "wsgw.yaml"


async def frame(ws: ClientConnection) -> dict[str, Any]:
    data = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert isinstance(data, dict)
    return data


async def names_in(http: aiohttp.ClientSession, node: GatewayProcess, room: str) -> list[str]:
    async with http.get(f"{node.base}/dev/rooms/{room}") as response:
        assert response.status == 200
        names = (await response.json())["names"]
        assert isinstance(names, list)
        return names


async def test_two_nodes_chat_in_a_room_and_a_rejoin_replays_what_was_missed(redis_url: str) -> None:
    with GatewayProcess(CONFIG, "--redis", redis_url, env=AWS_ENV) as a, \
            GatewayProcess(CONFIG, "--redis", redis_url, env=AWS_ENV) as b:
        async with aiohttp.ClientSession() as http, connect(f"{a.ws_url}?name=ada&room=lobby") as ada:
            async with connect(f"{b.ws_url}?name=bob") as bob:
                await bob.send(json.dumps({"action": "join", "room": "lobby"}))
                assert await frame(bob) == {"type": "joined", "room": "lobby"}
                notice = await frame(ada)
                assert (notice["group"], notice["event"], notice["principalId"]) == ("room:lobby", "join", "bob")

                await ada.send(json.dumps({"action": "sendmessage", "room": "lobby", "text": "hi bob"}))
                message = {"type": "message", "room": "lobby", "from": "ada", "text": "hi bob"}
                for ws in (ada, bob):
                    assert await frame(ws) == {"group": "room:lobby", "seq": 1, "data": message}
                await bob.send(json.dumps({"action": "whisper", "room": "lobby", "to": "ada", "text": "psst"}))
                assert await frame(ada) == {"type": "whisper", "from": "bob", "text": "psst"}
                await bob.send(json.dumps({"action": "who", "room": "lobby"}))
                assert await frame(bob) == {"type": "who", "room": "lobby", "names": ["ada", "bob"]}
                assert await names_in(http, b, "lobby") == ["ada", "bob"]
                async with http.post(f"{b.base}/dev/rooms/lobby/messages", json={"from": "ops", "text": "5pm"}) as r:
                    assert r.status == 202 and await r.json() == {"room": "lobby", "delivered": 2}
                for ws in (ada, bob):
                    assert (await frame(ws))["seq"] == 2
            leave = await frame(ada)                       # bob's socket closed: the room is told
            assert (leave["event"], leave["principalId"], leave["reason"]) == ("leave", "bob", "close")

            for text in ("while you were away", "still away"):
                await ada.send(json.dumps({"action": "sendmessage", "text": text}))    # the default room
                assert (await frame(ada))["data"]["text"] == text
            # bob comes back on the OTHER node, in the room from $connect, asking for what came after seq 2
            async with connect(f"{a.ws_url}?name=bob&room=lobby&since=2") as again:
                replay = [await frame(again) for _ in range(3)]
                assert [(f.get("seq"), f.get("data", {}).get("text")) for f in replay[:2]] == [
                    (3, "while you were away"), (4, "still away")]
                assert replay[2] == {"group": "room:lobby", "recovered": True, "replayed": 2}
                await again.send(json.dumps({"action": "leave", "room": "lobby"}))
                assert await frame(again) == {"type": "left", "room": "lobby", "wasMember": True}
                assert await names_in(http, b, "lobby") == ["ada"]


async def test_the_chat_on_two_workers_puts_every_client_in_its_room_from_connect(redis_url: str) -> None:
    """Each $connect joins through the node's own address: the kernel hands that request to either worker, and a
    join that lands on the worker not running the handshake must still take effect (not a 410)."""
    count = 16
    with GatewayProcess(CONFIG, "--workers", "2", "--redis", redis_url, env=AWS_ENV) as node:
        async with aiohttp.ClientSession() as http:
            clients = [await connect(f"{node.ws_url}?name=u{i}&room=w") for i in range(count)]
            try:
                expected = sorted(f"u{i}" for i in range(count))
                await eventually(lambda: names_in(http, node, "w"), lambda names: names == expected, timeout=10)
                await clients[0].send(json.dumps({"action": "sendmessage", "room": "w", "text": "all here?"}))

                async def first_message(ws: ClientConnection) -> dict[str, Any]:
                    while True:                    # presence notices of later joiners come first
                        received = await frame(ws)
                        if "seq" in received:
                            return received

                got = await asyncio.gather(*(first_message(ws) for ws in clients))
                assert {g["data"]["text"] for g in got} == {"all here?"}
            finally:
                for ws in clients:
                    await ws.close()
            await eventually(lambda: names_in(http, node, "w"), lambda names: names == [], timeout=10)
