"""The example chat: Lambda-style handlers on wsgw's groups. Rooms are groups (`room:<name>`), so the gateway
keeps who is in which room on every node and process, fans messages out, tells the room who came and went, and
replays what a client missed when it rejoins. This module keeps no state: it works the same with `--workers 2`
or on several nodes sharing Redis.

Connect with `ws://HOST/dev?name=ada` (`handlers/auth.py` wants a name), optionally `&room=lobby&since=41` to
be in a room from the first frame on. Then send:

    {"action": "join", "room": "lobby", "since": 41}     since: the last seq seen (optional) → the missed ones
    {"action": "leave", "room": "lobby"}
    {"action": "sendmessage", "room": "lobby", "text": "hi"}
    {"action": "whisper", "room": "lobby", "to": "bob", "text": "psst"}
    {"action": "who", "room": "lobby"}                  → {"type": "who", "room", "names"}
    {"action": "echo", ...}, {"action": "ping"}

`room` defaults to the stage variable `room` (lobby). wsgw.yaml gives `room:*` history, an envelope and
presence notices, so members receive `{"group": "room:lobby", "seq": 7, "data": {"type": "message", ...}}`,
`{"group": "room:lobby", "event": "join"|"leave", "connectionId", "principalId": "bob"}` and, after a join with
`since`, `{"group": "room:lobby", "recovered": true, "replayed": 2}`.

Rooms go through `wsgw.client.HttpPusher` to the endpoint the event names (this node's own; any node or worker
would do). A private message to one connection is boto3's `post_to_connection`, as on AWS.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from typing import Any

import boto3

from wsgw.client import HttpPusher

ROOM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@lru_cache(maxsize=8)
def pusher(endpoint: str) -> HttpPusher:
    """One pusher per endpoint (it keeps one keep-alive connection per handler thread)."""
    return HttpPusher(endpoint)


@lru_cache(maxsize=8)
def management_client(endpoint: str) -> Any:
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)


def endpoint_of(event: dict[str, Any]) -> str:
    """https://{domainName}/{stage}, as on AWS; wsgw sets WSGW_SCHEME=http when it runs without --tls."""
    ctx = event["requestContext"]
    scheme = os.environ.get("WSGW_SCHEME", "https")
    return f"{scheme}://{ctx['domainName']}/{ctx['stage']}"


def group_of(room: str) -> str:
    return f"room:{room}"


def room_of(event: dict[str, Any], asked: object) -> str | None:
    """The room a message names (else the stage's default room); None when the name is not a room name."""
    room = asked if asked else (event.get("stageVariables") or {}).get("room", "lobby")
    return room if isinstance(room, str) and ROOM_NAME.match(room) else None


def name_of(event: dict[str, Any]) -> str:
    """The authorizer's name for this connection (handlers/auth.py), else its principal (a JWT's sub), else its id."""
    ctx = event["requestContext"]
    authorizer = ctx.get("authorizer") or {}
    return str(authorizer.get("name") or authorizer.get("principalId") or ctx["connectionId"])


def body_of(event: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(event.get("body") or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def reply(payload: dict[str, Any], status: int = 200) -> dict[str, Any]:
    """A route response: the body goes back to the sender (routeResponse: true in wsgw.yaml)."""
    return {"statusCode": status, "body": json.dumps(payload)}


def since_of(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def on_connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """`?room=lobby[&since=N]`: in the room before the first frame (the gateway holds the join until the
    handshake completes, whichever node or worker the request reaches)."""
    query = event.get("queryStringParameters") or {}
    if "room" in query:
        room = room_of(event, query["room"])
        if room is None:
            return {"statusCode": 400, "body": "room: 1-64 letters, digits, '_', '.' or '-'"}
        pusher(endpoint_of(event)).join(group_of(room), event["requestContext"]["connectionId"],
                                        since_of(query.get("since")))
    return {"statusCode": 200}


def on_disconnect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Nothing to clean up: the gateway took the connection out of its rooms and told them (a leave notice)."""
    return {"statusCode": 200}


def join(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = body_of(event)
    room = room_of(event, body.get("room"))
    if room is None:
        return reply({"type": "error", "message": "room: 1-64 letters, digits, '_', '.' or '-'"})
    outcome = pusher(endpoint_of(event)).join(group_of(room), event["requestContext"]["connectionId"],
                                              since_of(body.get("since")))
    if outcome is None:                      # the client left meanwhile
        return {"statusCode": 200}
    return reply({"type": "joined", "room": room})


def leave(event: dict[str, Any], context: Any) -> dict[str, Any]:
    room = room_of(event, body_of(event).get("room"))
    if room is None:
        return reply({"type": "error", "message": "no such room"})
    left = pusher(endpoint_of(event)).leave(group_of(room), event["requestContext"]["connectionId"])
    return reply({"type": "left", "room": room, "wasMember": bool(left)})


def send_message(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Everyone in the room gets it (the sender too: its copy carries the seq it can resume from)."""
    body = body_of(event)
    room = room_of(event, body.get("room"))
    if room is None:
        return reply({"type": "error", "message": "no such room"})
    message = {"type": "message", "room": room, "from": name_of(event), "text": str(body.get("text", ""))[:4096]}
    pusher(endpoint_of(event)).publish(group_of(room), json.dumps(message))
    return {"statusCode": 200}


def whisper(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A private message to everyone called `to` in the room (their connections on any node)."""
    body = body_of(event)
    room, target = room_of(event, body.get("room")), str(body.get("to", ""))
    if room is None:
        return reply({"type": "error", "message": "no such room"})
    members = members_of(endpoint_of(event), room)
    client = management_client(endpoint_of(event))
    payload = json.dumps({"type": "whisper", "from": name_of(event), "text": str(body.get("text", ""))[:4096]})
    delivered = 0
    for member in members:
        if member.get("principalId") == target:
            try:
                client.post_to_connection(ConnectionId=member["connectionId"], Data=payload.encode())
                delivered += 1
            except client.exceptions.GoneException:
                pass                         # it left a moment ago; the gateway already took it out of the room
    if not delivered:
        return reply({"type": "error", "message": f"nobody called '{target}' is in {room}"})
    return {"statusCode": 200}


def who(event: dict[str, Any], context: Any) -> dict[str, Any]:
    room = room_of(event, body_of(event).get("room"))
    if room is None:
        return reply({"type": "error", "message": "no such room"})
    names = sorted({str(m.get("principalId") or m["connectionId"]) for m in members_of(endpoint_of(event), room)})
    return reply({"type": "who", "room": room, "names": names})


def members_of(endpoint: str, room: str) -> list[dict[str, Any]]:
    """Every member of a room on every node (presence, page by page)."""
    members: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = pusher(endpoint).presence(group_of(room), limit=1000, next_token=token)
        members.extend(page["members"])
        token = page.get("nextToken")
        if token is None:
            return members


async def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An async handler: the route response sends the body straight back."""
    return {"statusCode": 200, "body": event["body"]}


def on_default(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return reply({
        "type": "help",
        "message": "unknown action; try join, leave, sendmessage, whisper, who, echo or ping",
        "connectionId": event["requestContext"]["connectionId"],
    })
