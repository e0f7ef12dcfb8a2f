"""The browser chat's server side (web/ is its page): rooms with presence and resumable history.

Rooms are groups in the shape the groups API uses (issue 17): every frame a room member gets is an envelope
`{"group": room, "seq": n, "data": {...}}`, seq counting up per room, so a client that reconnects asks to
join again with `since` = the last seq it saw and gets what it missed. Joining is a REST route of this API
(`POST /rooms/{room}/members/{connectionId}?since=N`): management paths are not for browsers, the page asks
its own server, which checks the caller is that connection's user. State is in this module, like chat.py
(a warm Lambda's memory; on AWS it would be DynamoDB).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

from handlers import chat

HISTORY = 200                                   # frames kept per room for `since`
ROOMS: dict[str, set[str]] = {}                 # room -> connection ids
SEQ: dict[str, int] = {}                        # room -> last seq
LOG: dict[str, deque[dict[str, Any]]] = {}      # room -> last HISTORY envelopes
NAMES: dict[str, str] = {}                      # connection id -> name (from the authorizer)
LOCK = threading.Lock()


def _envelope(room: str, data: dict[str, Any]) -> dict[str, Any]:
    """Give `data` the room's next seq and keep it for late joiners (LOCK held)."""
    SEQ[room] = SEQ.get(room, 0) + 1
    envelope = {"group": room, "seq": SEQ[room], "data": data}
    LOG.setdefault(room, deque(maxlen=HISTORY)).append(envelope)
    return envelope


def _publish(event: dict[str, Any], room: str, data: dict[str, Any]) -> None:
    with LOCK:
        envelope = _envelope(room, data)
        members = list(ROOMS.get(room, ()))
    for member in members:
        if not chat.post(event, member, envelope):
            _leave(event, member)


def _presence(room: str) -> list[str]:
    return sorted({NAMES.get(cid, "?") for cid in ROOMS.get(room, ())})


def _leave(event: dict[str, Any], connection_id: str) -> None:
    with LOCK:
        left = [room for room, members in ROOMS.items() if connection_id in members]
        for room in left:
            ROOMS[room].discard(connection_id)
        name = NAMES.pop(connection_id, None)
    for room in left:
        _publish(event, room, {"type": "left", "name": name, "members": _presence(room)})


def join(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """REST: `POST /rooms/{room}/members/{connectionId}?since=N` with `{"name": ...}`."""
    params = event.get("pathParameters") or {}
    room, connection_id = str(params.get("room", ""))[:64], str(params.get("connectionId", ""))
    query = event.get("queryStringParameters") or {}
    try:
        since = int(query.get("since", "0"))
        name = str(json.loads(event.get("body") or "{}").get("name", ""))[:32]
    except (ValueError, AttributeError):
        return _answer(400, {"message": "since must be a number and the body {\"name\": ...}"})
    if not room or not name:
        return _answer(400, {"message": "a room and a name are required"})
    with LOCK:
        rejoin = connection_id in ROOMS.get(room, ())
        ROOMS.setdefault(room, set()).add(connection_id)
        NAMES[connection_id] = name
        missed = [e for e in LOG.get(room, ()) if e["seq"] > since] if since else []
    for envelope in missed:                          # what happened while the client was away, in order
        if not chat.post(event, connection_id, envelope):
            _leave(event, connection_id)
            return _answer(410, {"message": "that connection is gone"})
    if not rejoin:
        _publish(event, room, {"type": "joined", "name": name, "members": _presence(room)})
    with LOCK:
        seq = SEQ.get(room, 0)
    return _answer(200, {"group": room, "seq": seq, "replayed": len(missed), "members": _presence(room)})


def say(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """WebSocket: `{"action": "say", "room": ..., "text": ...}` to everyone in the room."""
    connection_id = event["requestContext"]["connectionId"]
    body = json.loads(event.get("body") or "{}")
    room = str(body.get("room", ""))
    with LOCK:
        member = connection_id in ROOMS.get(room, ())
        name = NAMES.get(connection_id, "?")
    if not member:
        chat.post(event, connection_id, {"type": "error", "message": f"join '{room}' first"})
        return {"statusCode": 200}
    _publish(event, room, {"type": "message", "from": name, "text": str(body.get("text", ""))[:4096]})
    return {"statusCode": 200}


def on_disconnect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """$disconnect: the terminal chat's cleanup, then this one's presence."""
    chat.on_disconnect(event, context)
    _leave(event, event["requestContext"]["connectionId"])
    return {"statusCode": 200}


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
