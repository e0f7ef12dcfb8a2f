"""A node that stalls past `node_ttl` is reaped by a survivor; when it comes back it must not resurrect the
reaped connections nor run their $disconnect a second time (real `wsgw run --redis` processes, SIGSTOP)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.helpers import serve, wait_for
from tests.redis_fixture import with_options
from tests.test_redis_nodes import Client, _store, event_log, events, health, http, nodes, post
from wsgw.client import AsyncRedisPusher
from wsgw.registry.redis import RedisRegistry
from wsgw.registry.redis_store import CLAIM_ORPHAN, REAP_CLAIM, Keys
from wsgw.registry.redis_wire import RedisOptions

__all__ = ["event_log"]     # the fixture, re-used from test_redis_nodes


def disconnects_of(log: Path, cid: str) -> list[int]:
    return [e["requestContext"]["disconnectStatusCode"] for e in events(log, "$disconnect")
            if e["requestContext"]["connectionId"] == cid]


async def _attempt(url: str) -> ClientConnection | int:
    """A handshake started while the node is stopped: the open socket, or the refusal's HTTP status."""
    try:
        return await connect(url, open_timeout=30)
    except InvalidStatus as exc:
        return int(exc.response.status_code)


async def test_a_node_stalled_past_node_ttl_is_reaped_once_and_closes_the_reaped_sockets(
        tmp_path: Path, event_log: Path, redis_url: str) -> None:
    url = with_options(redis_url, node_ttl=1)
    keys = Keys(RedisOptions.from_url(url).key_prefix)
    store = _store(url)
    with nodes(tmp_path, event_log, url, 2) as (a, b):
        old_id = health(a)["node"]
        reaped = await Client.open(a.ws_url)
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            # the survivor runs the stalled node's $disconnect (1006) once its heartbeat expired
            await wait_for(lambda: disconnects_of(event_log, reaped.cid), timeout=20)
            assert disconnects_of(event_log, reaped.cid) == [1006]
            async with http() as session:
                assert await post(session, b, reaped.cid, "while stalled") == 410
            assert store.exists(keys.tombstone(old_id))
            # a handshake that reaches the node while it is stopped (the kernel queues it)
            pending = asyncio.create_task(_attempt(a.ws_url))
            await asyncio.sleep(0)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        # back: the reaped socket is closed with 1001, its $disconnect is not run again, pushes to it are 410
        await asyncio.wait_for(reaped.ws.wait_closed(), 15)
        assert reaped.ws.close_code == 1001
        new_id = await wait_for(lambda: (n := health(a)["node"]) != old_id and n, timeout=15)
        async with http() as session:
            assert await post(session, b, reaped.cid, "after return") == 410
            assert await post(session, a, reaped.cid, "after return") == 410
            # the node serves new connections under its new id, reachable from the other node
            fresh = await Client.open(a.ws_url)
            assert await post(session, b, fresh.cid, "to the fresh one") == 200
            await wait_for(lambda: fresh.received == ["to the fresh one"])
            # the handshake that waited through the stall: refused (503) or served cleanly, never half-registered
            outcome = await asyncio.wait_for(pending, 30)
            late: Client | None = None
            if isinstance(outcome, int):
                assert outcome == 503
            else:
                await outcome.send('{"action": "whoami"}')
                late = Client(outcome, json.loads(await outcome.recv())["id"])
                assert await post(session, b, late.cid, "late") == 200
                await wait_for(lambda: late is not None and late.received == ["late"])
        await fresh.close()
        if late is not None:
            await late.close()
        await wait_for(lambda: len(disconnects_of(event_log, fresh.cid)) == 1, timeout=10)
        if late is not None:
            await wait_for(lambda: len(disconnects_of(event_log, late.cid)) == 1, timeout=10)
        assert disconnects_of(event_log, reaped.cid) == [1006]
        assert not store.exists(keys.conn(reaped.cid))
        assert not store.hexists(keys.nodes, old_id)
        assert store.hexists(keys.nodes, new_id)
        assert store.sismember(keys.conns(new_id), fresh.cid) in (0, False)   # closed: deregistered
    store.close()


async def test_a_reaped_node_keeps_the_connections_no_survivor_claimed_and_pushers_follow_its_new_id(
        tmp_path: Path, event_log: Path, redis_url: str) -> None:
    """A survivor claimed one of the node's two connections before the node came back (the test plays that
    survivor with the registry's own scripts, so the claimed one's $disconnect is never run anywhere)."""
    url = with_options(redis_url, node_ttl=1)
    keys = Keys(RedisOptions.from_url(url).key_prefix)
    store = _store(url)
    with nodes(tmp_path, event_log, url, 1) as (a,):
        old_id = health(a)["node"]
        kept = await Client.open(a.ws_url)
        claimed = await Client.open(a.ws_url)
        pusher = AsyncRedisPusher(url)
        assert await pusher.post(kept.cid, "before")              # the pusher now caches the owner
        await wait_for(lambda: kept.received == ["before"])
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            await wait_for(lambda: not store.exists(keys.alive(old_id)), timeout=10)
            assert store.eval(REAP_CLAIM, 3, keys.alive(old_id), keys.reaper(old_id), keys.tombstone(old_id),
                              "test-survivor", "30000", "3600000") == 1
            assert store.eval(CLAIM_ORPHAN, 1, keys.conn(claimed.cid), old_id)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        await asyncio.wait_for(claimed.ws.wait_closed(), 15)
        assert claimed.ws.close_code == 1001
        new_id = await wait_for(lambda: (n := health(a)["node"]) != old_id and n, timeout=15)
        await wait_for(lambda: store.hget(keys.conn(kept.cid), "node") == new_id.encode(), timeout=10)
        assert store.sismember(keys.conns(new_id), kept.cid)
        assert not store.exists(keys.conns(old_id))
        assert await pusher.post(kept.cid, "after")               # cached owner is stale: looked up again
        await wait_for(lambda: kept.received == ["before", "after"])
        assert not await pusher.post(claimed.cid, "after")
        await pusher.close()
        await kept.close()
        await wait_for(lambda: len(disconnects_of(event_log, kept.cid)) == 1, timeout=10)
        await wait_for(lambda: not store.exists(keys.conn(kept.cid)), timeout=10)
        assert disconnects_of(event_log, claimed.cid) == []        # the survivor's job, never the node's
    store.close()


async def test_a_node_whose_heartbeat_is_overdue_refuses_new_connections_until_it_beats_again(
        redis_url: str) -> None:
    from tests.test_redis_registry import API
    from wsgw.registry import ConnectionRecord, RegistryUnavailable

    url = with_options(redis_url, node_ttl=1)
    async with serve(API, redis_url=url) as node:
        registry = node.gateway.registry
        assert isinstance(registry, RedisRegistry)
        assert not registry.fenced()
        time.sleep(1.1)  # noqa: ASYNC251 - the loop stalls past node_ttl, as under SIGSTOP
        assert registry.fenced()
        record = ConnectionRecord("RmVuY2VkMDAwMQ=", registry.node_id, 0, 0, "127.0.0.1", None)
        with pytest.raises(RegistryUnavailable, match="heartbeat"):
            await registry.register(record)
        await wait_for(lambda: not registry.fenced(), timeout=5)
        async with connect(node.urls.websocket) as ws:
            await ws.send("back")
            assert await ws.recv() == "back"
