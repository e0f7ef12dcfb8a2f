"""Redis stopped in the middle of traffic: every failed command's outcome is consumed, so asyncio never logs
`Future exception was never retrieved` (futures of a dropped pipeline used to be left unawaited)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from tests.helpers import open_client, serve, wait_for
from tests.redis_fixture import RedisServer, with_options
from tests.test_redis_registry import API
from wsgw.registry import RegistryUnavailable


async def test_stopping_redis_mid_traffic_leaves_no_unretrieved_future_errors(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    caplog.set_level(logging.ERROR, logger="asyncio")
    url = with_options(redis_server.url, node_ttl=2)
    try:
        async with serve(API, redis_url=url) as a, serve(API, redis_url=url) as b:
            targets = [(await open_client(a))[1] for _ in range(5)]
            stop = asyncio.Event()
            outcomes: list[str] = []

            async def push() -> None:
                while not stop.is_set():
                    for cid in targets:
                        try:
                            outcomes.append("ok" if await b.gateway.post(cid, b"x") else "gone")
                        except RegistryUnavailable:
                            outcomes.append("unavailable")
                    await asyncio.sleep(0)

            async def handshake() -> None:
                while not stop.is_set():
                    with contextlib.suppress(InvalidStatus, WebSocketException, OSError, TimeoutError):
                        async with connect(a.urls.websocket, open_timeout=5) as ws:
                            await ws.send("hi")
                            await ws.recv()
                    await asyncio.sleep(0)

            workers = [asyncio.create_task(push()) for _ in range(4)]
            workers += [asyncio.create_task(handshake()) for _ in range(8)]
            await wait_for(lambda: outcomes.count("ok") >= 50, timeout=15)
            redis_server.stop()
            mark = len(outcomes)
            await wait_for(lambda: outcomes[mark:].count("unavailable") >= 20, timeout=15)
            stop.set()
            await asyncio.gather(*workers)
            assert "gone" not in outcomes
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    unretrieved = [c for c in reported if "never retrieved" in str(c.get("message", ""))]
    assert unretrieved == [], unretrieved
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
