"""The raw RESP connection as a protocol object, fed bytes by hand (no server): replies resolve commands in order,
and the hang detector counts only time in which the server made no progress."""

from __future__ import annotations

import asyncio

from wsgw.registry.resp import RespConnection


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False


async def test_replies_resolve_commands_in_the_order_sent() -> None:
    conn = RespConnection()
    conn.connection_made(FakeTransport())
    first, second = conn.command("GET", "a"), conn.command("GET", "b")
    conn.data_received(b"$1\r\nx\r\n$-1\r\n")
    assert (await first, await second) == (b"x", None)


async def test_a_server_answering_a_long_pipeline_is_not_taken_for_a_hung_one() -> None:
    loop = asyncio.get_running_loop()
    conn = RespConnection()
    conn.connection_made(FakeTransport())
    futures = [conn.command("SREM", "k", str(i)) for i in range(3)]
    sent = loop.time()
    assert conn.oldest_wait(sent + 5) >= 5            # nothing answered for 5 s: hung
    conn.data_received(b":1\r\n")                     # the server is working through the pipeline
    answered = conn.last_reply
    assert conn.oldest_wait(answered + 0.5) < 1.0     # progress: the wait counts from the last reply
    assert conn.oldest_wait(answered + 5) >= 5        # and stalls again without one
    conn.data_received(b":1\r\n:1\r\n")
    assert conn.oldest_wait(loop.time() + 100) == 0.0  # nothing left unanswered
    assert [await f for f in futures] == [1, 1, 1]
