"""The push path: answers to pipelined requests written together without holding one back while another waits,
and pushes to other nodes batched per owner node (one Redis message per node per loop turn) with every POST
answered for itself."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import eagerapp
import redis

from tests.helpers import open_client, serve, wait_for
from tests.redis_fixture import with_options
from tests.test_redis_nodes import Client, event_log, http, nodes, post

__all__ = ["event_log"]     # the fixture, re-used from test_redis_nodes

API: dict[str, Any] = {
    "stage": "dev",
    "routes": {"$default": {"handler": "testapp:ok"}},
    "http": {"routes": {"POST /gate": {"handler": "eagerapp:rest_gate", "timeoutMs": 5000}}},
}

WS_API: dict[str, Any] = {
    "routes": {"$default": {"handler": "testapp:echo", "routeResponse": True},
               "whoami": {"integration": {"type": "mock", "response": '{"id": "$context.connectionId"}'},
                          "routeResponse": True}},
}


async def read_answers(reader: asyncio.StreamReader, count: int) -> list[tuple[int, bytes]]:
    """`count` HTTP/1.1 answers as (status, body), read by their Content-Length."""
    answers = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
        body = await asyncio.wait_for(reader.readexactly(length), 5)
        answers.append((int(lines[0].split()[1]), body))
    return answers


async def test_pipelined_answers_keep_their_order_and_none_waits_behind_a_request_that_waits() -> None:
    eagerapp.GATES.clear()
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        gate = b"POST /dev/gate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        writer.write(health + health + gate + health)
        first = await read_answers(reader, 2)                # written before the gated call waits
        assert [status for status, _ in first] == [200, 200]
        await wait_for(lambda: eagerapp.GATES)
        eagerapp.GATES[0].set()
        rest = await read_answers(reader, 2)
        assert rest[0] == (200, b"opened") and rest[1][0] == 200
        writer.close()


async def test_many_pipelined_pushes_are_all_answered_in_order() -> None:
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        gone = [f"POST /dev/@connections/gone{i:04d}AAAAAA= HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
                for i in range(200)]
        writer.write("".join(gone).encode() + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = await read_answers(reader, 201)
        assert [status for status, _ in answers] == [410] * 200 + [200]
        writer.close()


# ----- pushes to another node: one Redis message per owner node per loop turn ---------------------------


async def test_pushes_to_another_node_travel_batched_and_arrive_in_order_each_answered(redis_url: str) -> None:
    stats = redis.Redis.from_url(redis_url.split("?")[0])

    def publishes() -> int:
        return int(stats.info("commandstats").get("cmdstat_publish", {}).get("calls", 0))

    async with serve(WS_API, redis_url=redis_url) as a, serve(WS_API, redis_url=redis_url) as b:
        clients = [await open_client(a) for _ in range(10)]
        for _ws, cid in clients:                       # the owner is known to b: what follows is pushes only
            assert await b.gateway.get(cid) is not None
        before = publishes()
        plan = [(cid, f"{cid}-{n}") for n in range(10) for _ws, cid in clients]
        results = await asyncio.gather(*(b.gateway.post(cid, data.encode()) for cid, data in plan))
        used = publishes() - before
        assert results == [True] * len(plan)
        assert used <= len(plan) // 4                   # requests and replies: a few messages, not 2 per push
        for ws, cid in clients:
            frames = [await asyncio.wait_for(ws.recv(), 5) for _ in range(10)]
            assert frames == [f"{cid}-{n}" for n in range(10)]
            await ws.close()
    stats.close()


async def test_a_batch_to_a_connection_that_closed_answers_gone_for_it_and_delivers_the_rest(redis_url: str) -> None:
    async with serve(WS_API, redis_url=redis_url) as a, serve(WS_API, redis_url=redis_url) as b:
        (live_ws, live), (closed_ws, closed) = await open_client(a), await open_client(a)
        for cid in (live, closed):
            assert await b.gateway.get(cid) is not None
        await closed_ws.close()
        await wait_for(lambda: closed not in a.gateway.connections)
        results = await asyncio.gather(*(b.gateway.post(cid, f"{cid}-{n}".encode())
                                         for n in range(3) for cid in (live, closed)))
        assert results == [True, False] * 3
        assert [await asyncio.wait_for(live_ws.recv(), 5) for _ in range(3)] == [f"{live}-{n}" for n in range(3)]
        await live_ws.close()


async def test_a_node_killed_while_batches_to_it_are_in_flight_leaves_no_push_unanswered_or_falsely_200(
        tmp_path: Path, event_log: Path, redis_url: str) -> None:
    url = with_options(redis_url, push_timeout=2, node_ttl=3)
    with nodes(tmp_path, event_log, url, 2) as (a, b):
        on_a = [await Client.open(a.ws_url) for _ in range(10)]
        plan = [(client.cid, f"push-{n}") for n in range(20) for client in on_a]
        answered: list[int] = []

        async def post_counted(session: aiohttp.ClientSession, cid: str, data: str) -> int:
            status = await post(session, b, cid, data)
            answered.append(status)
            return status

        async with http() as session:             # 250 client connections: every push in flight at once
            burst = asyncio.gather(*(post_counted(session, cid, data) for cid, data in plan))
            await wait_for(lambda: len(answered) >= 50, timeout=20)
            a.stop(signal.SIGKILL)                      # batches to a are in flight: some delivered, some not
            statuses = await asyncio.wait_for(burst, 30)
        assert set(statuses) <= {200, 410, 504}         # every push answered, none lost in the batch
        assert statuses.count(200) >= 50
        for client in on_a:
            await client.close()
        delivered = {(cid, data) for (cid, data), status in zip(plan, statuses, strict=True) if status == 200}
        received = {(client.cid, frame) for client in on_a for frame in client.received}
        assert delivered <= received                    # a 200 only for a frame its client got
