"""The push path: answers to pipelined requests written together without holding one back while another waits,
and pushes to other nodes batched per owner node (one Redis message per node per loop turn) with every POST
answered for itself."""

from __future__ import annotations

import asyncio
from typing import Any

import eagerapp

from tests.helpers import serve, wait_for

API: dict[str, Any] = {
    "stage": "dev",
    "routes": {"$default": {"handler": "testapp:ok"}},
    "http": {"routes": {"POST /gate": {"handler": "eagerapp:rest_gate", "timeoutMs": 5000}}},
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

