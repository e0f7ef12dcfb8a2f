"""The chat's REST side (HTTP API payload format 2.0): read the room, post into it.

Same process, same state as handlers/chat.py: the room's members are chat.ROOM and their names chat.NAMES.
A message posted here reaches every WebSocket in the room through chat.broadcast (boto3's
post_to_connection back to this gateway), exactly as a worker would push it.
"""

from __future__ import annotations

import json
from typing import Any

from handlers import chat


def room_name(event: dict[str, Any]) -> str:
    """The chat has one room; its name is the stage variable `room` (lobby in wsgw.yaml)."""
    return (event.get("stageVariables") or {}).get("room", "lobby")


def list_rooms(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GET /rooms → {"rooms": {"lobby": ["ada", "bob"]}}; a bare dict becomes a 200 JSON response."""
    with chat.LOCK:
        members = sorted(chat.NAMES.get(cid, cid) for cid in chat.ROOM)
    return {"rooms": {room_name(event): members}}


def post_message(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """POST /rooms/{name}/messages {"from": "ops", "text": "hi"} → 202 {"delivered": n}; 404 for other rooms."""
    name = event["pathParameters"]["name"]
    if name != room_name(event):
        return {"statusCode": 404, "headers": {"content-type": "application/json"},
                "body": json.dumps({"message": f"no room called '{name}'"})}
    body = json.loads(event["body"])
    delivered = chat.broadcast(event, {"type": "message", "from": body["from"], "text": body["text"]})
    return {"statusCode": 202, "headers": {"content-type": "application/json"},
            "body": json.dumps({"room": name, "delivered": delivered})}
