"""The registry contract, one suite for every implementation (memory, Redis on a real redis-server): what a node
may rely on whatever store holds its connections. Behaviours that need two nodes are in test_redis_*.py.

Two levels: the Registry interface driven directly (with a small in-process node), and a real gateway on top of
each registry, where local delivery and a gone connection must answer the same everywhere.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import testapp

from tests.helpers import eventually, open_client, serve, wait_for
from wsgw.group_config import History
from wsgw.registry import ConnectionRecord, Registry, open_registry
from wsgw.registry.base import Member
from wsgw.registry.memory import MemoryHub, MemoryRegistry

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:ok"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    },
}


@pytest.fixture(params=["memory", "redis"])
def registry_url(request: pytest.FixtureRequest) -> str | None:
    """Each registry implementation in turn: None is the memory registry, a URL a real Redis (own key prefix)."""
    if request.param == "memory":
        return None
    return str(request.getfixturevalue("redis_url"))


@dataclass
class Node:
    """A node holding connections in a dict: what a registry reaches through LocalNode, with every call noted."""

    node_id: str = "contract-node"
    held: dict[str, ConnectionRecord] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    groups: dict[str, set[str]] = field(default_factory=dict)

    def deliver_local(self, connection_id: str, data: bytes) -> bool:
        self.calls.append(("deliver", connection_id))
        return connection_id in self.held

    def disconnect_local(self, connection_id: str) -> bool:
        self.calls.append(("disconnect", connection_id))
        return self.held.pop(connection_id, None) is not None

    def drop_local(self, connection_id: str) -> bool:
        self.calls.append(("drop", connection_id))
        return self.held.pop(connection_id, None) is not None

    def lookup_local(self, connection_id: str) -> ConnectionRecord | None:
        return self.held.get(connection_id)

    def broadcast_local(self, data: bytes) -> int:
        self.calls.append(("broadcast", ""))
        return len(self.held)

    def local_records(self) -> Iterable[ConnectionRecord]:
        return list(self.held.values())

    async def run_orphan_disconnect(self, record: ConnectionRecord, groups: Collection[str] = ()) -> None:
        self.calls.append(("orphan", record.connection_id))

    async def join_local(self, group: str, connection_id: str, since: int | None) -> dict[str, Any] | None:
        self.calls.append(("join", connection_id))
        if connection_id not in self.held:
            return None
        self.groups.setdefault(group, set()).add(connection_id)
        return {"joined": True}

    async def leave_local(self, group: str, connection_id: str) -> bool | None:
        self.calls.append(("leave", connection_id))
        if connection_id not in self.held:
            return None
        return connection_id in self.groups.get(group, set()) and not self.groups[group].discard(connection_id)

    def publish_local(self, group: str, frame: bytes, exclude: str | None, seq: int | None) -> int:
        self.calls.append(("publish", group))
        return len(self.groups.get(group, set()) - {exclude})

    async def publish_group(self, group: str, data: bytes, exclude: str | None) -> int:
        return self.publish_local(group, data, exclude, None)

    def local_memberships(self) -> Iterable[tuple[str, Member]]:
        return [(group, member(cid, self)) for group, ids in self.groups.items() for cid in ids]


@pytest.fixture
async def started(registry_url: str | None) -> AsyncIterator[tuple[Registry, Node]]:
    registry = open_registry(registry_url)
    node = Node()
    await registry.start(node)
    try:
        yield registry, node
    finally:
        await registry.stop()


def record(connection_id: str, node: Node) -> ConnectionRecord:
    return ConnectionRecord(connection_id, node.node_id, 1_700_000_000_000, 1_700_000_000_000, "127.0.0.1",
                            "contract-test", "example.test", {"principalId": "me"})


def member(connection_id: str, node: Node, principal: str | None = "me") -> Member:
    return Member(connection_id, node.node_id, principal, 1_700_000_000_000)


# ----- the Registry interface -----------------------------------------------------------------------------

async def test_a_nodes_own_connection_is_answered_by_the_node_never_through_the_registry(
        started: tuple[Registry, Node]) -> None:
    registry, node = started
    node.held["T3duMDAwMDE="] = record("T3duMDAwMDE=", node)
    await registry.register(node.held["T3duMDAwMDE="])
    assert await registry.lookup("T3duMDAwMDE=") is None
    assert await registry.deliver("T3duMDAwMDE=", b"x") is False
    assert await registry.disconnect("T3duMDAwMDE=") is False
    assert node.calls == []                 # no request looped back to its own node
    assert "T3duMDAwMDE=" in node.held


async def test_a_connection_names_its_deployment_to_every_other_node(registry_url: str | None) -> None:
    """What a survivor reads to run an orphan's $disconnect on the version that served it (a lookup asks the
    owner; the principal index reads the stored record)."""
    owner, other = Node("contract-owner"), Node("contract-other")
    hub = MemoryHub()
    registries = [MemoryRegistry(hub) if registry_url is None else open_registry(registry_url) for _ in range(2)]
    await registries[0].start(owner)
    await registries[1].start(other)
    try:
        held = replace(record("RGVwbG95MDE=", owner), deployment="chat/prod/v2/canary")
        owner.held[held.connection_id] = held
        await registries[0].register(held)
        found = await registries[1].lookup(held.connection_id)
        assert found is not None and found.deployment == "chat/prod/v2/canary"
        assert [r.deployment for r in await registries[1].connections_of("me")] == ["chat/prod/v2/canary"]
        await registries[0].deregister(held.connection_id)
    finally:
        for registry in registries:
            await registry.stop()


async def test_an_unknown_connection_is_gone(started: tuple[Registry, Node]) -> None:
    registry, node = started
    assert await registry.lookup("VW5rbm93bjE=") is None
    assert await registry.deliver("VW5rbm93bjE=", b"x") is False
    assert await registry.disconnect("VW5rbm93bjE=") is False
    assert node.calls == []


async def test_deregister_is_idempotent_and_never_raises(started: tuple[Registry, Node]) -> None:
    registry, node = started
    await registry.register(record("RGVyZWcwMDE=", node))
    await registry.deregister("RGVyZWcwMDE=")
    await registry.deregister("RGVyZWcwMDE=")
    await registry.deregister("TmV2ZXJIZXJl")            # never registered
    assert await registry.deliver("RGVyZWcwMDE=", b"x") is False
    assert await registry.lookup("RGVyZWcwMDE=") is None


async def test_many_registrations_at_once_all_succeed(started: tuple[Registry, Node]) -> None:
    registry, node = started
    records = [record(f"TWFueS{i:04d}Q=", node) for i in range(200)]
    await asyncio.gather(*(registry.register(r) for r in records))
    await asyncio.gather(*(registry.deregister(r.connection_id) for r in records))


async def test_touch_is_synchronous_and_does_no_io(started: tuple[Registry, Node]) -> None:
    registry, node = started
    await registry.register(record("VG91Y2gwMDE=", node))
    result = registry.touch("VG91Y2gwMDE=", 1_700_000_000_500)
    assert result is None and not inspect.isawaitable(result)
    registry.touch("TmV2ZXJIZXJl", 1)                   # unknown: still no error
    await registry.deregister("VG91Y2gwMDE=")


async def test_broadcast_with_no_other_node_reaches_nobody_and_leaves_local_sockets_to_the_node(
        started: tuple[Registry, Node]) -> None:
    registry, node = started
    node.held["QmNhc3QwMDE="] = record("QmNhc3QwMDE=", node)
    await registry.register(node.held["QmNhc3QwMDE="])
    assert await registry.broadcast(b"news") == 0
    assert node.calls == []


async def test_health_names_the_registry(started: tuple[Registry, Node]) -> None:
    registry, _ = started
    assert registry.health()["registry"] == registry.name


# ----- groups through the Registry interface ---------------------------------------------------------------

async def test_join_leave_and_presence_count_exactly_the_members(started: tuple[Registry, Node]) -> None:
    registry, node = started
    for cid in ("R3JwMDAwMQ==", "R3JwMDAwMg==", "R3JwMDAwMw=="):
        await registry.join("room:1", member(cid, node))
    await registry.join("room:1", member("R3JwMDAwMQ==", node))          # idempotent
    page = await registry.members("room:1", 100)
    assert page.count == 3
    assert {m.connection_id for m in page.members} == {"R3JwMDAwMQ==", "R3JwMDAwMg==", "R3JwMDAwMw=="}
    assert {(m.node_id, m.principal_id, m.connected_at_ms) for m in page.members} == {
        (node.node_id, "me", 1_700_000_000_000)}
    assert await registry.leave("room:1", "R3JwMDAwMg==") is True
    assert await registry.leave("room:1", "R3JwMDAwMg==") is False
    assert (await registry.members("room:1", 100)).count == 2
    assert (await registry.members("room:other", 100)).count == 0


async def test_leave_all_takes_a_connection_out_of_every_group_at_once(started: tuple[Registry, Node]) -> None:
    registry, node = started
    for group in ("a", "b", "c"):
        await registry.join(group, member("QWxsMDAwMQ==", node))
        await registry.join(group, member("QWxsMDAwMg==", node))
    assert await registry.groups_of("QWxsMDAwMQ==") == ["a", "b", "c"]
    await registry.leave_all("QWxsMDAwMQ==", ["a", "b", "c"])
    assert await registry.groups_of("QWxsMDAwMQ==") == []
    for group in ("a", "b", "c"):
        page = await registry.members(group, 10)
        assert [m.connection_id for m in page.members] == ["QWxsMDAwMg=="]
    await registry.leave_all("QWxsMDAwMQ==", ["a"])                       # again: nothing, no error


async def test_presence_pages_through_every_member_once(started: tuple[Registry, Node]) -> None:
    registry, node = started
    ids = [f"UGFnZS{i:04d}Q=" for i in range(450)]
    await asyncio.gather(*(registry.join("big", member(cid, node, None)) for cid in ids))
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = await registry.members("big", 100, token)
        assert page.count == 450
        seen += [m.connection_id for m in page.members]
        pages += 1
        token = page.next_token
        if token is None:
            break
    assert pages > 1 and set(seen) == set(ids)
    assert all(m.principal_id is None for m in (await registry.members("big", 5)).members)


async def test_history_numbers_publishes_and_replays_what_came_after_a_sequence(
        started: tuple[Registry, Node]) -> None:
    registry, _ = started
    history = History(size=3, ttl_seconds=60)
    now = 1_700_000_000_000
    assert (await registry.stamp("plain", b"x", None, now)).seq is None
    seqs = [(await registry.stamp("h", f"m{i}".encode(), history, now)).seq for i in range(1, 5)]
    assert seqs == [1, 2, 3, 4]
    assert await registry.history("h", 1, history, now) == [(2, b"m2"), (3, b"m3"), (4, b"m4")]
    assert await registry.history("h", 3, history, now) == [(4, b"m4")]
    assert await registry.history("h", 4, history, now) == []              # nothing missed
    assert await registry.history("h", 0, history, now) is None            # trimmed: size 3 no longer reaches 1
    assert await registry.history("h", 9, history, now) is None            # ahead of the sequence: reset
    assert await registry.history("h", 2, history, now + 61_000) is None   # expired
    assert await registry.history("never", 0, history, now) == []


async def test_a_publish_with_no_other_node_is_fanned_out_to_nobody(started: tuple[Registry, Node]) -> None:
    registry, node = started
    node.held["RmFuMDAwMDE="] = record("RmFuMDAwMDE=", node)
    await registry.register(node.held["RmFuMDAwMDE="])
    await registry.join("solo", member("RmFuMDAwMDE=", node))
    stamp = await registry.stamp("solo", b"hi", None, 1)
    assert await registry.fan_out("solo", b"hi", None, stamp) == 0
    assert await registry.join_remote("solo", "VW5rbm93bjE=", None) is None
    assert await registry.leave_remote("solo", "VW5rbm93bjE=") is None
    assert node.calls == []                 # nothing looped back to its own node


# ----- a gateway on top: local and gone connections answer the same on every registry ---------------------

async def test_post_reaches_a_local_connection_and_a_closed_one_is_gone(registry_url: str | None) -> None:
    async with serve(API, redis_url=registry_url) as node:
        ws, cid = await open_client(node)
        assert await node.gateway.post(cid, b"pushed")
        assert await ws.recv() == "pushed"
        await ws.close()
        await wait_for(lambda: cid not in node.gateway.connections)
        assert await node.gateway.post(cid, b"late") is False
        assert await node.gateway.post("TmV2ZXJIZXJl", b"x") is False


async def test_get_describes_a_local_connection_and_nothing_once_it_closed(registry_url: str | None) -> None:
    async with serve(API, redis_url=registry_url) as node:
        ws, cid = await open_client(node)
        described = await node.gateway.get(cid)
        assert described is not None
        assert (described.connection_id, described.node_id, described.source_ip) == (
            cid, node.gateway.node_id, "127.0.0.1")
        await ws.send("activity")
        assert await ws.recv() == "activity"
        touched = await node.gateway.get(cid)
        assert touched is not None and touched.last_active_ms >= described.last_active_ms
        await ws.close()
        await wait_for(lambda: cid not in node.gateway.connections)
        assert await node.gateway.get(cid) is None


async def test_delete_closes_a_local_connection_once_with_1000(registry_url: str | None) -> None:
    async with serve(API, redis_url=registry_url) as node:
        ws, cid = await open_client(node)
        assert await node.gateway.delete(cid)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1000
        await wait_for(lambda: testapp.events_of("$disconnect"))
        assert [e["requestContext"]["disconnectStatusCode"] for e in testapp.events_of("$disconnect")] == [1000]
        assert await node.gateway.delete(cid) is False


async def test_broadcast_counts_every_local_connection_once(registry_url: str | None) -> None:
    async with serve(API, redis_url=registry_url) as node:
        clients = [await open_client(node) for _ in range(3)]
        assert await node.gateway.broadcast(b"all") == 3
        assert [await ws.recv() for ws, _ in clients] == ["all"] * 3
        for ws, _ in clients:
            await ws.close()


async def test_a_group_publish_reaches_exactly_its_members_and_a_closed_one_leaves(registry_url: str | None) -> None:
    async with serve(API, redis_url=registry_url) as node:
        (a, a_id), (b, b_id), (c, _) = [await open_client(node) for _ in range(3)]
        groups = node.gateway.groups
        assert await groups.join("room:1", a_id) == {"joined": True}
        assert await groups.join("room:1", b_id) == {"joined": True}
        assert await groups.join("room:1", "VW5rbm93bjE=") is None
        assert await groups.publish("room:1", b"hello") == 2
        assert await a.recv() == "hello" and await b.recv() == "hello"
        assert await groups.publish("room:1", b"not to a", exclude=a_id) == 1
        assert await b.recv() == "not to a"
        await c.send("ping")
        assert await c.recv() == "ping"          # c got no group frame before its own echo
        await b.close()
        await wait_for(lambda: b_id not in node.gateway.connections)
        await eventually(lambda: groups.presence("room:1"), lambda page: page.count == 1)
        assert [m.connection_id for m in (await groups.presence("room:1", 10)).members] == [a_id]
        assert await groups.leave("room:1", a_id) is True
        assert (await groups.presence("room:1", 10)).count == 0
        await a.close()
