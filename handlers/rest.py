"""The chat's REST side (HTTP API payload format 2.0): who is in a room, post into it, and the web chat's join.

No state here either: all go to the room's group (handlers/chat.py) through the @groups API of this node, so
a post reaches the room's members on every node, numbered and kept in its history like a chat message.
"""

from __future__ import annotations

import json
from typing import Any

from handlers import chat


def _json(status: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(payload)}


def _room(event: dict[str, Any]) -> str | None:
    return chat.room_of(event, event["pathParameters"]["name"])


def _no_room(event: dict[str, Any]) -> dict[str, Any]:
    return _json(404, {"message": f"no room called '{event['pathParameters']['name']}'"})


def list_members(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GET /rooms/{name} → {"room": "lobby", "names": ["ada", "bob"]}."""
    room = _room(event)
    if room is None:
        return _no_room(event)
    return _json(200, {"room": room, "names": chat.names_in(chat.endpoint_of(event), room)})


def post_message(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """POST /rooms/{name}/messages {"from": "ops", "text": "hi"} → 202 {"room", "delivered": n}."""
    room = _room(event)
    if room is None:
        return _no_room(event)
    body = json.loads(event["body"])
    message = {"type": "message", "room": room, "from": body["from"], "text": body["text"]}
    delivered = chat.pusher(chat.endpoint_of(event)).publish(chat.group_of(room), json.dumps(message))
    return _json(202, {"room": room, "delivered": delivered})


def join_member(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """POST /rooms/{name}/members/{connectionId}[?since=N]: the web chat's join (a browser may not call the
    @groups management paths) → {"room", "group", "joined", "recovered"?, "replayed"?, "names"}; 410 when the
    connection is gone. With `since` the gateway replays on the socket what the room said after that seq.

    The connection id is the caller's proof here: only that connection (and its room's members, through the
    presence notices) know it. An API with real users would check that the REST caller (e.g. the same JWT) is
    the connection's principal: GET /@connections?principalId= lists a user's connections."""
    room = _room(event)
    if room is None:
        return _no_room(event)
    since_text = (event.get("queryStringParameters") or {}).get("since")
    since = chat.since_of(since_text)
    if since_text is not None and since is None:
        return _json(400, {"message": "since must be a sequence number (a whole number >= 0)"})
    endpoint = chat.endpoint_of(event)
    outcome = chat.join_room(endpoint, room, event["pathParameters"]["connectionId"], since)
    if outcome is None:
        return _json(410, {"message": "that connection is gone"})
    return _json(200, {"room": room, **outcome, "names": chat.names_in(endpoint, room)})
