"""The MESSAGE event is built from a template (wsgw/aws/websocket_events.py): it must be the event the common
requestContext builder makes, key for key and in the same order, and serialise to the same bytes."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from wsgw.aws.websocket_events import ConnectionInfo, _context, message_event

CONNECTIONS = [
    ConnectionInfo("Ab_cdEfGhIjKlM=", 1_700_000_000_000, "203.0.113.9", "Mozilla/5.0", "gw.example:8443", "prod",
                   "abc123defg"),
    ConnectionInfo("Zz-yXwVuTsRqPo=", 1_700_000_000_500, "2001:db8::1", None, "localhost", "dev", "wsgwlocal0",
                   authorizer={"principalId": "user-1", "scope": "read", "integrationLatency": 3},
                   access_key="AKIDEXAMPLE"),
]


def built_from_parts(conn: ConnectionInfo, route_key: str, body: str, is_base64: bool,
                     stage_variables: dict[str, str] | None, request_id: str, message_id: str,
                     now_ms: int) -> dict[str, Any]:
    """The event as the shared requestContext builder makes it (what CONNECT and DISCONNECT use)."""
    context = _context(conn, route_key, "MESSAGE", request_id, now_ms, message_id)
    if conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    event: dict[str, Any] = {"requestContext": context, "body": body, "isBase64Encoded": is_base64}
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    return event


def ordered(value: Any) -> Any:
    """Dicts as lists of (key, value) pairs, recursively: equality that also checks key order."""
    if isinstance(value, dict):
        return [(key, ordered(item)) for key, item in value.items()]
    return value


@pytest.mark.parametrize("conn", CONNECTIONS, ids=["plain", "authorized"])
@pytest.mark.parametrize(("body", "is_base64", "stage_variables"),
                         [('{"action": "send"}', False, None), ("AAEC", True, {"room": "lobby", "n": "2"})])
def test_the_templated_event_is_the_built_one_key_for_key_in_order_and_byte_for_byte(
        conn: ConnectionInfo, body: str, is_base64: bool, stage_variables: dict[str, str] | None) -> None:
    args = (conn, "sendmessage", body, is_base64, stage_variables, "RqId_abcdefgh=", "MsgId-abcdefg=",
            1_700_000_123_456)
    templated = message_event(*args)
    built = built_from_parts(*args)
    assert ordered(templated) == ordered(built)
    assert orjson.dumps(templated) == orjson.dumps(built)
    assert json.dumps(templated) == json.dumps(built)


def test_events_of_one_connection_share_no_mutable_part() -> None:
    conn = CONNECTIONS[1]
    first = message_event(conn, "a", "x", False, {"k": "v"}, "r1", "m1", 1)
    second = message_event(conn, "a", "x", False, {"k": "v"}, "r2", "m2", 2)
    first["requestContext"]["identity"]["sourceIp"] = "changed by a handler"
    first["requestContext"]["authorizer"]["principalId"] = "changed"
    first["stageVariables"]["k"] = "changed"
    assert second["requestContext"]["identity"]["sourceIp"] == "2001:db8::1"
    assert second["requestContext"]["authorizer"]["principalId"] == "user-1"
    assert second["stageVariables"] == {"k": "v"}
    third = message_event(conn, "a", "x", False, None, "r3", "m3", 3)
    assert third["requestContext"]["requestId"] == "r3" and "stageVariables" not in third
