"""Fencing (issue 20 item 11): a node frozen past `node_ttl` had its connections reaped by a survivor; when it
resumes it must not write to those sockets nor answer 200 for them, whatever was queued while it was stopped
(real `wsgw run --redis` processes, SIGSTOP/SIGCONT)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.helpers import APPS, ROOT, raw_http, wait_for
from tests.redis_fixture import with_options
from tests.test_redis_nodes import Client, event_log, health, http, nodes, post
from tests.test_redis_reaped import disconnects_of
from wsgw.client import AsyncRedisPusher

__all__ = ["event_log"]

PUSHES = 16


async def push_status(port: int, cid: str, text: str) -> int:
    body = text.encode()
    reply = await raw_http(port, b"POST /dev/@connections/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                           b"Connection: close\r\n\r\n%s" % (cid.encode(), len(body), body), timeout=60)
    return int(reply.split()[1])


async def test_a_node_resumed_after_its_lease_ran_out_writes_nothing_to_reaped_sockets_and_answers_no_200(
        tmp_path: Path, event_log: Path, redis_url: str) -> None:
    url = with_options(redis_url, node_ttl=1)
    with nodes(tmp_path, event_log, url, 2) as (a, b):
        old_id = health(a)["node"]
        reaped = await Client.open(a.ws_url)
        pusher = AsyncRedisPusher(url)
        assert await pusher.post(reaped.cid, "before")             # the pusher now caches a as the owner
        await wait_for(lambda: reaped.received == ["before"])
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            await wait_for(lambda: disconnects_of(event_log, reaped.cid) == [1006], timeout=20)
            # queued while a is frozen: pushes straight to a (the kernel accepts them) and through Redis to
            # a's channel (the pusher's cached owner)
            direct = [asyncio.create_task(push_status(a.port, reaped.cid, f"direct {i}")) for i in range(PUSHES)]
            via_redis = [asyncio.create_task(pusher.post(reaped.cid, f"redis {i}")) for i in range(4)]
            await asyncio.sleep(0.5)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        statuses = await asyncio.gather(*direct)
        redis_outcomes = await asyncio.gather(*via_redis, return_exceptions=True)
        await asyncio.wait_for(reaped.ws.wait_closed(), 15)
        assert reaped.received == ["before"]                      # nothing written after the lease ran out
        assert 200 not in statuses and set(statuses) <= {410, 503}, statuses
        assert True not in redis_outcomes, redis_outcomes
        await wait_for(lambda: health(a)["node"] != old_id, timeout=15)
        async with http() as session:                             # a serves again under its new id
            fresh = await Client.open(a.ws_url)
            assert await post(session, b, fresh.cid, "fresh") == 200
            await wait_for(lambda: fresh.received == ["fresh"])
            await fresh.close()
        assert disconnects_of(event_log, reaped.cid) == [1006]
        await pusher.close()


async def test_a_re_joining_node_admits_and_keeps_new_connections_while_it_still_adopts_the_old_ones(
        tmp_path: Path, event_log: Path, redis_url: str) -> None:
    """The cause of test_redis_reaped's 1-in-5 failure: the new id's heartbeat had succeeded, the reaped socket
    was closed, yet the node refused handshakes (503) until its adoption's last Redis call returned."""
    url = with_options(redis_url, node_ttl=1)
    slow = Path(__file__).parent / "fixtures" / "slow_adoption"
    with nodes(tmp_path, event_log, url, 2, env_extra={"PYTHONPATH": f"{slow}{os.pathsep}{ROOT}{os.pathsep}{APPS}"}
               ) as (a, b):
        old_id = health(a)["node"]
        reaped = await Client.open(a.ws_url)
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            await wait_for(lambda: disconnects_of(event_log, reaped.cid) == [1006], timeout=20)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        await asyncio.wait_for(reaped.ws.wait_closed(), 15)
        await wait_for(lambda: health(a)["node"] != old_id, timeout=15)
        fresh = await Client.open(a.ws_url)                       # inside the slowed adoption: admitted
        async with http() as session:
            assert await post(session, b, fresh.cid, "during") == 200
            await wait_for(lambda: any("whose $disconnect a survivor ran" in line for line in a.output), 15)
            assert await post(session, b, fresh.cid, "after") == 200
        await wait_for(lambda: fresh.received == ["during", "after"])
        await fresh.close()
        await wait_for(lambda: len(disconnects_of(event_log, fresh.cid)) == 1, timeout=10)
