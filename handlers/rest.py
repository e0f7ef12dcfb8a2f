"""The chat's REST side (HTTP API payload format 2.0): who is in a room, post into it.

No state here either: both go to the room's group (handlers/chat.py) through the @groups API of this node, so
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


def list_members(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GET /rooms/{name} → {"room": "lobby", "names": ["ada", "bob"]}."""
    room = _room(event)
    if room is None:
        return _json(404, {"message": f"no room called '{event['pathParameters']['name']}'"})
    members = chat.members_of(chat.endpoint_of(event), room)
    return _json(200, {"room": room, "names": sorted(str(m.get("principalId") or m["connectionId"])
                                                     for m in members)})


def post_message(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """POST /rooms/{name}/messages {"from": "ops", "text": "hi"} → 202 {"room", "delivered": n}."""
    room = _room(event)
    if room is None:
        return _json(404, {"message": f"no room called '{event['pathParameters']['name']}'"})
    body = json.loads(event["body"])
    message = {"type": "message", "room": room, "from": body["from"], "text": body["text"]}
    delivered = chat.pusher(chat.endpoint_of(event)).publish(chat.group_of(room), json.dumps(message))
    return _json(202, {"room": room, "delivered": delivered})
