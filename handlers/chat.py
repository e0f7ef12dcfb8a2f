"""A chat written the AWS way: Lambda-style handlers that push to clients with boto3's
`apigatewaymanagementapi` client. Unchanged, the same code runs on Amazon API Gateway
(there, keep the room state in DynamoDB instead of this module's dicts).

Messages: {"action": "join", "name": "ada"}, {"action": "sendmessage", "text": "hi"},
{"action": "whisper", "to": "bob", "text": "psst"}, {"action": "echo", ...}.
"""

from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from typing import Any

import boto3

NAMES: dict[str, str] = {}            # connectionId -> display name (module state persists, as in a warm Lambda)
ROOM: set[str] = set()                 # connectionIds that joined
LOCK = threading.Lock()                # sync handlers run in a thread pool


@lru_cache(maxsize=8)
def management_client(endpoint: str) -> Any:
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)


def endpoint_of(event: dict[str, Any]) -> str:
    """https://{domainName}/{stage}, as on AWS; wsgw sets WSGW_SCHEME=http when it runs without --tls."""
    ctx = event["requestContext"]
    scheme = os.environ.get("WSGW_SCHEME", "https")
    return f"{scheme}://{ctx['domainName']}/{ctx['stage']}"


def post(event: dict[str, Any], connection_id: str, payload: dict[str, Any]) -> bool:
    """Push one JSON message; a gone connection is forgotten, as AWS's samples do."""
    client = management_client(endpoint_of(event))
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=json.dumps(payload).encode())
        return True
    except client.exceptions.GoneException:
        forget(connection_id)
        return False


def forget(connection_id: str) -> None:
    with LOCK:
        ROOM.discard(connection_id)
        NAMES.pop(connection_id, None)


def on_connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = (event.get("queryStringParameters") or {}).get("name")
    if name:
        with LOCK:
            NAMES[event["requestContext"]["connectionId"]] = name
    return {"statusCode": 200}


def on_disconnect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    name = NAMES.get(connection_id)
    was_in_room = connection_id in ROOM
    forget(connection_id)
    if was_in_room and name:
        broadcast(event, {"type": "left", "name": name})
    return {"statusCode": 200}


def join(event: dict[str, Any], context: Any) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    body = json.loads(event["body"])
    name = str(body.get("name") or NAMES.get(connection_id) or connection_id)[:64]
    with LOCK:
        NAMES[connection_id] = name
        ROOM.add(connection_id)
    broadcast(event, {"type": "joined", "name": name})
    return {"statusCode": 200}


def send_message(event: dict[str, Any], context: Any) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    body = json.loads(event["body"])
    sender = NAMES.get(connection_id, connection_id)
    broadcast(event, {"type": "message", "from": sender, "text": str(body.get("text", ""))})
    return {"statusCode": 200}


def whisper(event: dict[str, Any], context: Any) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    body = json.loads(event["body"])
    target = str(body.get("to", ""))
    with LOCK:
        matches = [cid for cid, name in NAMES.items() if name == target and cid in ROOM]
    sender = NAMES.get(connection_id, connection_id)
    delivered = sum(post(event, cid, {"type": "whisper", "from": sender, "text": str(body.get("text", ""))})
                    for cid in matches)
    if not delivered:
        post(event, connection_id, {"type": "error", "message": f"nobody called '{target}' is here"})
    return {"statusCode": 200}


def broadcast(event: dict[str, Any], payload: dict[str, Any]) -> int:
    """Push to everyone in the room; returns how many sockets took it (the REST front reports it)."""
    with LOCK:
        members = list(ROOM)
    return sum(post(event, connection_id, payload) for connection_id in members)


async def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An async handler: the route response sends the body straight back."""
    return {"statusCode": 200, "body": event["body"]}


def on_default(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps({
        "type": "help",
        "message": "unknown action; try join, sendmessage, whisper, echo or ping",
        "connectionId": event["requestContext"]["connectionId"],
    })}
