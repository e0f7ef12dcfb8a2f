"""Groups over the management paths, on one node (memory) and on two nodes sharing a real Redis: who receives a
publish, membership ending with leave / close / DELETE, presence, joins from $connect, hostile input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import eventually, open_client, serve, wait_for
from wsgw.client import AsyncHttpPusher, AsyncRedisPusher
from wsgw.server.app import GatewayServer

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:connect_and_join"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    },
    # race:* keeps 6: the 3 live publishes racing a recovery may land before its history read, and the 5 before
    # them plus those 3 must still reach back to seq 3 (with 5 kept, seq 3 is trimmed and recovered is False,
    # rightly); since=1 is then past the history.
    "groups": {"hist:*": {"history": {"size": 5, "ttlSeconds": 60}, "envelope": True},
               "race:*": {"history": {"size": 6, "ttlSeconds": 60}, "envelope": True}},
    "limits": {"maxPostBytes": 4096},
}


class Reader:
    """Every frame a client receives, in order."""

    def __init__(self, ws: ClientConnection, cid: str) -> None:
        self.ws, self.cid = ws, cid
        self.frames: list[str] = []
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                self.frames.append(frame if isinstance(frame, str) else frame.decode())

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 5)


async def reader(node: GatewayServer) -> Reader:
    ws, cid = await open_client(node)
    return Reader(ws, cid)


def endpoint(node: GatewayServer) -> str:
    return f"http://127.0.0.1:{node.port}/dev"


@contextlib.asynccontextmanager
async def two_nodes(redis_url: str) -> AsyncIterator[tuple[GatewayServer, GatewayServer]]:
    async with serve(API, redis_url=redis_url) as a, serve(API, redis_url=redis_url) as b:
        yield a, b


async def member_ids(pusher: AsyncHttpPusher, group: str) -> set[str]:
    answer = await pusher.presence(group, limit=1000)
    return {m["connectionId"] for m in answer["members"]}


# ----- one node ----------------------------------------------------------------------------------------------

async def test_management_paths_join_publish_presence_and_leave_on_one_node() -> None:
    async with serve(API) as node, AsyncHttpPusher(endpoint(node)) as pusher:
        a, b, outsider = [await reader(node) for _ in range(3)]
        assert await pusher.join("room:1", a.cid) == {"joined": True}
        assert await pusher.join("room:1", b.cid) == {"joined": True}
        assert await pusher.publish("room:1", "hi all") == 2
        assert await pusher.publish("room:1", b"not to a", exclude=a.cid) == 1
        await wait_for(lambda: b.frames == ["hi all", "not to a"])
        presence = await pusher.presence("room:1")
        assert presence["count"] == 2
        assert {m["connectionId"] for m in presence["members"]} == {a.cid, b.cid}
        assert all(m["connectedAt"].endswith("Z") and m["principalId"] is None for m in presence["members"])
        assert await pusher.leave("room:1", b.cid) is True
        assert await pusher.leave("room:1", b.cid) is False
        assert await pusher.publish("room:1", "only a") == 1
        await wait_for(lambda: a.frames == ["hi all", "only a"])
        assert outsider.frames == [] and b.frames == ["hi all", "not to a"]
        for client in (a, b, outsider):
            await client.close()


async def test_an_unknown_connection_is_gone_for_join_and_leave() -> None:
    async with serve(API) as node, aiohttp.ClientSession() as http:
        for method in ("PUT", "DELETE"):
            async with http.request(method, f"{endpoint(node)}/@groups/room:1/members/VW5rbm93bjE=") as response:
                assert response.status == 410
                assert response.headers["x-amzn-ErrorType"] == "GoneException"


@pytest.mark.parametrize("group", ["a" * 129, "has%20space", "%7Bslot%7D", "a%2Fb", "star*", "%00", "caf%C3%A9"])
async def test_hostile_group_names_are_refused_with_400(group: str) -> None:
    async with serve(API) as node, aiohttp.ClientSession() as http:
        for method, suffix in (("POST", ""), ("GET", ""), ("PUT", "/members/QWJjZGVmZ2g=")):
            async with http.request(method, f"{endpoint(node)}/@groups/{group}{suffix}", data=b"x") as response:
                assert response.status == 400, (method, group)
                assert response.headers["x-amzn-ErrorType"] == "BadRequestException"


async def test_bad_input_oversized_frames_bad_since_and_bad_paging_are_refused() -> None:
    async with serve(API) as node, aiohttp.ClientSession() as http:
        ws, cid = await open_client(node)
        base = endpoint(node)
        async with http.post(f"{base}/@groups/room:1", data=b"x" * 4097) as response:
            assert response.status == 413
            assert response.headers["x-amzn-ErrorType"] == "PayloadTooLargeException"
        for path in (f"/@groups/room:1/members/{cid}?since=-1", f"/@groups/room:1/members/{cid}?since=x"):
            async with http.put(base + path) as response:
                assert response.status == 400
        for query in ("limit=0", "limit=1001", "limit=x", "nextToken=abc"):
            async with http.get(f"{base}/@groups/room:1?{query}") as response:
                assert response.status == 400, query
        async with http.post(f"{base}/@groups/room:1?exclude=not%20an%20id", data=b"x") as response:
            assert response.status == 400
        async with http.get(f"{base}/@groups/room:1/other") as response:
            assert response.status == 400
        async with http.patch(f"{base}/@groups/room:1") as response:
            assert response.status == 405
        async with http.get(f"{base}/@connections?group=room:1&principalId=x") as response:
            assert response.status == 400
        await ws.close()


async def test_management_paths_follow_management_allow_from() -> None:
    api = {**API, "management": {"allowFrom": ["10.0.0.0/8"]}}
    async with serve(api) as node, aiohttp.ClientSession() as http:
        for method, path in (("POST", "/@groups/room:1"), ("GET", "/@groups/room:1"),
                             ("PUT", "/@groups/room:1/members/QWJjZGVmZ2g="), ("GET", "/@connections?group=g")):
            async with http.request(method, endpoint(node) + path) as response:
                assert response.status == 403
                assert response.headers["x-amzn-ErrorType"] == "ForbiddenException"


async def test_listing_connections_by_group_and_by_principal() -> None:
    api = {**API, "authorizers": {"users": {"type": "request", "handler": "authapp:allow_by_query",
                                            "identitySource": ["route.request.querystring.user"]}},
           "routes": {**API["routes"], "$connect": {"handler": "testapp:connect_and_join", "authorizer": "users"}}}
    async with serve(api) as node, aiohttp.ClientSession() as http:
        url = node.urls.websocket
        ann1, ann2, bob = [Reader(ws, "") for ws in [await connect(f"{url}?user=ann&groups=g1"),
                                                     await connect(f"{url}?user=ann"),
                                                     await connect(f"{url}?user=bob&groups=g1")]]
        async with http.get(f"{endpoint(node)}/@connections?principalId=ann") as response:
            listed = await response.json()
        assert listed["count"] == 2 and {c["principalId"] for c in listed["connections"]} == {"ann"}
        async with http.get(f"{endpoint(node)}/@connections?group=g1") as response:
            in_group = await response.json()
        assert in_group["count"] == 2
        assert sorted(c["principalId"] for c in in_group["connections"]) == ["ann", "bob"]
        for client in (ann1, ann2, bob):
            await client.close()


async def test_a_join_from_connect_takes_effect_before_any_other_frame() -> None:
    async with serve(API) as node, AsyncHttpPusher(endpoint(node)) as pusher:
        first = await connect(f"{node.urls.websocket}?groups=room:c")
        # The second one's $connect joins, then announces itself into the group: the announcement is published
        # before the second connection is open, so only the first gets it; the second is a member the moment
        # its 101 arrives (no waiting), and the next publish is its first frame.
        second = await connect(f"{node.urls.websocket}?groups=room:c,room:d&announce=hello")
        assert (await pusher.presence("room:c"))["count"] == 2
        assert (await pusher.presence("room:d"))["count"] == 1
        assert await pusher.publish("room:d", "first frame") == 1
        assert await asyncio.wait_for(second.recv(), 5) == "first frame"
        assert await asyncio.wait_for(first.recv(), 5) == "hello"
        await first.close()
        await second.close()


async def test_recovery_on_one_node_replays_in_order_then_reports_recovered() -> None:
    async with serve(API) as node, AsyncHttpPusher(endpoint(node)) as pusher:
        for i in range(1, 4):
            assert await pusher.publish("hist:1", json.dumps({"n": i})) == 0
        client = await reader(node)
        outcome = await pusher.join("hist:1", client.cid, since=1)
        assert outcome == {"joined": True, "group": "hist:1", "recovered": True, "replayed": 2}
        await pusher.publish("hist:1", '{"n": 4}')
        await wait_for(lambda: len(client.frames) == 4)
        frames = [json.loads(f) for f in client.frames]
        assert frames == [{"group": "hist:1", "seq": 2, "data": {"n": 2}},
                          {"group": "hist:1", "seq": 3, "data": {"n": 3}},
                          {"group": "hist:1", "recovered": True, "replayed": 2},
                          {"group": "hist:1", "seq": 4, "data": {"n": 4}}]
        await client.close()


# ----- two nodes, one Redis -------------------------------------------------------------------------------

async def test_a_publish_on_either_node_reaches_exactly_the_members_on_both(redis_url: str) -> None:
    async with two_nodes(redis_url) as (a, b), AsyncHttpPusher(endpoint(a)) as via_a, \
            AsyncHttpPusher(endpoint(b)) as via_b:
        on_a = [await reader(a) for _ in range(3)]
        on_b = [await reader(b) for _ in range(3)]
        members = [on_a[0], on_a[1], on_b[0]]
        for client in members:
            assert await via_b.join("room:x", client.cid) == {"joined": True}   # joins cross nodes too
        assert await via_a.publish("room:x", "from a") == 3
        assert await via_b.publish("room:x", "from b", exclude=on_a[0].cid) == 2
        await wait_for(lambda: on_b[0].frames == ["from a", "from b"] and on_a[1].frames == ["from a", "from b"])
        assert on_a[0].frames == ["from a"]
        assert all(c.frames == [] for c in (on_a[2], on_b[1], on_b[2]))
        assert await member_ids(via_a, "room:x") == {c.cid for c in members}
        for client in on_a + on_b:
            await client.close()


async def test_leave_close_and_delete_each_end_membership_on_every_node(redis_url: str) -> None:
    async with two_nodes(redis_url) as (a, b), AsyncHttpPusher(endpoint(b)) as via_b:
        left, closed, deleted, stays = [await reader(a) for _ in range(4)]
        for client in (left, closed, deleted, stays):
            await via_b.join("room:y", client.cid)
        assert await via_b.leave("room:y", left.cid) is True
        await closed.close()
        assert await via_b.delete(deleted.cid)
        await eventually(lambda: member_ids(via_b, "room:y"), lambda ids: ids == {stays.cid})
        assert await via_b.publish("room:y", "after") == 1
        await wait_for(lambda: stays.frames == ["after"])
        assert left.frames == [] and closed.frames == []
        assert not a.gateway.groups.table.members.get("room:y", {}).keys() - {stays.cid}
        for client in (left, stays):
            await client.close()


async def test_presence_under_churn_equals_the_live_members(redis_url: str) -> None:
    async with two_nodes(redis_url) as (a, b), AsyncHttpPusher(endpoint(a)) as pusher:
        clients = [await reader(a if i % 2 else b) for i in range(40)]

        async def churn(i: int, client: Reader) -> Reader | None:
            await pusher.join("churn", client.cid)
            if i % 4 == 0:
                await client.close()
                return None
            if i % 4 == 1:
                await pusher.leave("churn", client.cid)
                await pusher.join("churn", client.cid)
            if i % 4 == 2:
                await pusher.leave("churn", client.cid)
                return None
            return client

        kept = await asyncio.gather(*(churn(i, c) for i, c in enumerate(clients)))
        live = {c.cid for c in kept if c is not None}
        await eventually(lambda: member_ids(pusher, "churn"), lambda ids: ids == live)
        assert await pusher.publish("churn", "count") == len(live)
        for client in clients:
            await client.close()
        await eventually(lambda: member_ids(pusher, "churn"), lambda ids: ids == set())


async def test_recovery_after_reconnecting_to_another_node_replays_exactly_what_was_missed(redis_url: str) -> None:
    async with two_nodes(redis_url) as (a, b), AsyncHttpPusher(endpoint(a)) as via_a, \
            AsyncHttpPusher(endpoint(b)) as via_b:
        first = await reader(a)
        await via_a.join("race:r", first.cid)
        for i in range(1, 3):
            await via_b.publish("race:r", f'"m{i}"')
        await wait_for(lambda: len(first.frames) == 2)
        last_seen = json.loads(first.frames[-1])["seq"]
        await first.close()
        for i in range(3, 6):                                   # missed while away
            await via_a.publish("race:r", f'"m{i}"')
        again = await reader(b)
        # live publishes race the recovery: none may be lost, duplicated or overtake the replay
        racing = asyncio.gather(*(via_a.publish("race:r", f'"live{i}"') for i in range(3)))
        outcome = await via_b.join("race:r", again.cid, since=last_seen)
        await racing
        assert outcome is not None and outcome["recovered"] is True and outcome["replayed"] >= 3
        await wait_for(lambda: len(again.frames) == 7)
        frames = [json.loads(f) for f in again.frames]
        notice = frames.index({"group": "race:r", "recovered": True, "replayed": outcome["replayed"]})
        data = [f["data"] for f in frames if "seq" in f]
        seqs = [f["seq"] for f in frames if "seq" in f]
        assert data[:3] == ["m3", "m4", "m5"] and sorted(data[3:]) == ["live0", "live1", "live2"]
        assert seqs[:outcome["replayed"]] == list(range(3, 3 + outcome["replayed"]))
        assert len(set(seqs)) == 6 and seqs[:notice] == sorted(seqs[:notice])
        # past the history (6 kept of 8): the client must reload its state
        late = await reader(a)
        assert await via_a.join("race:r", late.cid, since=1) == {"joined": True, "group": "race:r",
                                                                   "recovered": False}
        await wait_for(lambda: late.frames == ['{"group":"race:r","recovered":false}'])
        await again.close()
        await late.close()


async def test_the_redis_pusher_joins_publishes_and_reads_presence(redis_url: str) -> None:
    async with two_nodes(redis_url) as (a, b), AsyncRedisPusher(redis_url) as pusher:
        on_a, on_b, other = await reader(a), await reader(b), await reader(b)
        assert await pusher.join("room:p", on_a.cid) == {"joined": True}
        assert await pusher.join("room:p", on_b.cid) == {"joined": True}
        assert await pusher.join("room:p", "VW5rbm93bjE=") is None
        assert await pusher.publish("room:p", "via redis") == 2
        await wait_for(lambda: on_a.frames == ["via redis"] and on_b.frames == ["via redis"])
        assert (await pusher.presence("room:p"))["count"] == 2
        assert await pusher.leave("room:p", on_b.cid) is True
        assert await pusher.publish("room:p", "again", exclude=on_a.cid) == 0
        assert other.frames == []
        for client in (on_a, on_b, other):
            await client.close()


RELAY_API: dict[str, Any] = {
    **API,
    "routes": {**API["routes"],
               "say": {"integration": {"type": "group", "group": "room:${request.body.room}", "excludeSelf": True}},
               "shout": {"integration": {"type": "group", "group": "room:${request.body.room}"},
                         "routeResponse": True}},
    "groups": {"room:*": {"presence": True}},
}


async def test_relay_routes_publish_for_members_and_refuse_non_members(redis_url: str) -> None:
    async with serve(RELAY_API, redis_url=redis_url) as a, serve(RELAY_API, redis_url=redis_url) as b, \
            AsyncHttpPusher(endpoint(a)) as pusher:
        sender, outsider = await reader(a), await reader(a)
        listener = await reader(b)
        await pusher.join("room:7", listener.cid)
        await pusher.join("room:7", sender.cid)
        # presence notices (opt-in): the listener sees the sender join
        await wait_for(lambda: listener.frames == [json.dumps(
            {"group": "room:7", "event": "join", "connectionId": sender.cid}, separators=(",", ":"))])
        listener.frames.clear()
        await sender.ws.send(json.dumps({"action": "say", "room": 7, "text": "hi"}))
        await wait_for(lambda: listener.frames == ['{"action": "say", "room": 7, "text": "hi"}'])
        await sender.ws.send(json.dumps({"action": "shout", "room": 7}))
        await wait_for(lambda: '{"delivered": 2}' in sender.frames)
        await outsider.ws.send(json.dumps({"action": "say", "room": 7, "text": "let me in"}))
        await outsider.ws.send(json.dumps({"action": "say", "text": "no room"}))
        await wait_for(lambda: len(outsider.frames) == 2)
        assert all(json.loads(f)["message"] == "Forbidden" for f in outsider.frames)
        assert "let me in" not in "".join(listener.frames)
        await sender.close()
        await wait_for(lambda: any('"event":"leave"' in f for f in listener.frames))
        for client in (outsider, listener):
            await client.close()


async def test_a_join_from_connect_sent_to_another_node_takes_effect_as_the_connection_opens(redis_url: str) -> None:
    # The $connect handler on a calls b's @groups endpoint (as a handler does when its request lands on another
    # node or --workers process): b does not know the id yet, asks the other nodes, and a holds the join.
    async with two_nodes(redis_url) as (a, b), AsyncHttpPusher(endpoint(b)) as via_b:
        before = set(a.gateway.connections)
        ws = await connect(f"{a.urls.websocket}?groups=room:x,room:y&via={b.port}")
        cid = next(iter(set(a.gateway.connections) - before))
        assert a.gateway.groups.is_member("room:x", cid) and a.gateway.groups.is_member("room:y", cid)
        await eventually(lambda: member_ids(via_b, "room:x"), lambda ids: ids == {cid})
        assert await via_b.publish("room:x", "through b") == 1
        assert await asyncio.wait_for(ws.recv(), 5) == "through b"
        assert await via_b.leave("room:y", cid) is True
        assert await via_b.join("room:x", "VW5rbm93bjE=") is None          # nobody holds it: still 410
        await ws.close()


JOIN_ROUTES_API: dict[str, Any] = {
    **API,
    "routes": {**API["routes"], "$join": {"handler": "testapp:ok"}, "$leave": {"handler": "testapp:ok"}},
    "groups": {"game:*": {"joinRoutes": True}},
}


async def test_join_and_leave_routes_get_wsgw_s_own_event_for_groups_that_opt_in() -> None:
    import testapp

    testapp.reset()
    async with serve(JOIN_ROUTES_API) as node, AsyncHttpPusher(endpoint(node)) as pusher:
        client = await reader(node)
        await pusher.join("game:1", client.cid)
        await pusher.join("room:1", client.cid)              # no joinRoutes for room:*: no call
        await pusher.leave("game:1", client.cid)
        await pusher.join("game:2", client.cid, since=0)
        await client.ws.send(json.dumps({"action": "$join"}))   # a client cannot select them
        await wait_for(lambda: client.frames[-1:] == ['{"action": "$join"}'])     # $default echoed it
        await client.close()
        await wait_for(lambda: len(testapp.events_of("$leave")) == 2)
    joins, leaves = testapp.events_of("$join"), testapp.events_of("$leave")
    assert [json.loads(e["body"]) for e in joins] == [
        {"group": "game:1", "event": "join", "reason": "join"},
        {"group": "game:2", "event": "join", "reason": "join", "since": 0}]
    assert [json.loads(e["body"]) for e in leaves] == [
        {"group": "game:1", "event": "leave", "reason": "leave"},
        {"group": "game:2", "event": "leave", "reason": "close"}]
    context = joins[0]["requestContext"]
    assert (context["routeKey"], context["eventType"], context["connectionId"]) == ("$join", "JOIN", client.cid)
    assert leaves[0]["requestContext"]["eventType"] == "LEAVE" and joins[0]["isBase64Encoded"] is False


def test_join_routes_without_a_route_and_a_group_relay_on_a_rest_route_are_config_errors() -> None:
    from tests.helpers import api_from
    from wsgw.errors import ConfigError
    from wsgw.http_config import parse_http

    with pytest.raises(ConfigError) as refused:
        api_from({**API, "groups": {"game:*": {"joinRoutes": True}}})
    assert [p.key for p in refused.value.problems] == ["groups.game:*.joinRoutes"]
    with pytest.raises(ConfigError) as refused:
        parse_http(api_from({**API, "http": {"routes": {
            "POST /say": {"integration": {"type": "group", "group": "room:1"}}}}}))
    assert [p.key for p in refused.value.problems] == ["http.routes.POST /say.integration.type"]
    assert "@groups" in refused.value.problems[0].message


async def test_groups_on_a_three_master_redis_cluster(redis_cluster: Any) -> None:
    """Group keys hash to one slot per group (wsgw:{g:<group>}), publishes cross nodes over sharded Pub/Sub."""
    from tests.redis_fixture import with_options

    url = with_options(redis_cluster.url, key_prefix=f"c{id(redis_cluster) % 100000}x{os.getpid()}", node_ttl=2)
    api = {**API, "groups": {**API["groups"], "room:*": {"presence": True}}}
    async with serve(api, redis_url=url) as a, serve(api, redis_url=url) as b, \
            AsyncHttpPusher(endpoint(a)) as via_a, AsyncHttpPusher(endpoint(b)) as via_b:
        assert a.gateway.registry.health()["redisMode"] == "cluster"
        on_a, on_b, outsider = await reader(a), await reader(b), await reader(b)
        groups = [f"room:{i}" for i in range(6)]              # spread over the masters' slots
        for group in groups:
            assert await via_b.join(group, on_a.cid) == {"joined": True}
            assert await via_a.join(group, on_b.cid) == {"joined": True}
        await wait_for(lambda: len(on_a.frames) == 6)        # b's joins, told by presence notices
        on_a.frames.clear()
        for group in groups:
            assert await via_b.publish(group, f"to {group}") == 2
            assert await via_a.publish(group, f"but b {group}", exclude=on_a.cid) == 1
            presence = await via_a.presence(group)
            assert presence["count"] == 2 and {m["connectionId"] for m in presence["members"]} == {on_a.cid, on_b.cid}
        await wait_for(lambda: on_a.frames == [f"to {g}" for g in groups])
        await wait_for(lambda: on_b.frames == [f for g in groups for f in (f"to {g}", f"but b {g}")])
        # history across nodes, and a $connect join sent to the other node
        for i in range(3):
            await via_a.publish("hist:c", f'"m{i}"')
        late = Reader(await connect(f"{b.urls.websocket}?groups=hist:c&since=1&via={a.port}"), "")
        await wait_for(lambda: len(late.frames) == 3)
        assert [json.loads(f).get("seq") for f in late.frames] == [2, 3, None]
        assert json.loads(late.frames[2]) == {"group": "hist:c", "recovered": True, "replayed": 2}
        await on_b.close()
        await eventually(lambda: via_a.presence("room:5"), lambda p: p["count"] == 1)
        assert outsider.frames == []
        for client in (on_a, outsider, late):
            await client.close()
