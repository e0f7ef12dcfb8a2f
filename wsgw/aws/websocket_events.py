"""The events of a WebSocket API's Lambda proxy integration, field for field as AWS builds them.

CONNECT, MESSAGE and DISCONNECT events, the REQUEST authorizer's input on `$connect`, and the exact bytes of
AWS's error frames; each field set was checked against events captured on AWS (tests/fixtures/aws,
docs/aws-contract.md). Builders run per message, so they are plain dict literals with no copying beyond what
keeps one event from leaking into the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from wsgw.aws.ids import request_time

__all__ = [
    "ConnectionInfo",
    "authorizer_request_event",
    "connect_event",
    "disconnect_event",
    "error_frame",
    "message_event",
]

Pairs = Sequence[tuple[str, str]]   # header or query lines (a Headers, or a list)


@dataclass(slots=True)
class ConnectionInfo:
    """What every event of one connection needs to know about it."""

    connection_id: str
    connected_at_ms: int
    source_ip: str
    user_agent: str | None
    domain_name: str  # the Host header the client connected with, e.g. "127.0.0.1:8080"
    stage: str
    api_id: str
    # principalId, context keys, integrationLatency: goes to requestContext.authorizer when not None
    authorizer: dict[str, object] | None = None
    # the caller's access key when the handshake was SigV4-signed (authorizationType: AWS_IAM)
    access_key: str | None = None


# Hop-by-hop headers AWS leaves out of the $connect integration event (they do reach a
# REQUEST authorizer). Lower case.
_CONNECT_DROPPED: Final = frozenset({"connection", "upgrade"})


def _fold(pairs: Pairs, drop: frozenset[str] = frozenset()) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(single-value, multi-value) maps of repeated name/value pairs; the single map keeps the last value.

    Names keep the spelling the client sent; repeats are grouped case-insensitively under
    the first spelling seen.
    """
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in pairs:
        low = name.lower()
        if low in drop:
            continue
        key = spelling.setdefault(low, name)
        single[key] = value
        values = multi.get(key)
        if values is None:
            multi[key] = [value]
        else:
            values.append(value)
    return single, multi


def _fold_query(pairs: Pairs) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Query parameters: case-sensitive names, the single map keeps the last value."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        values = multi.get(name)
        if values is None:
            multi[name] = [value]
        else:
            values.append(value)
    return single, multi


def _with_forwarded_for(pairs: Pairs, source_ip: str) -> list[tuple[str, str]]:
    """Append the client's address to X-Forwarded-For, as AWS's edge does."""
    out: list[tuple[str, str]] = []
    seen = False
    for name, value in pairs:
        if name.lower() == "x-forwarded-for":
            if not seen:
                value = f"{value}, {source_ip}" if value else source_ip
                seen = True
            else:
                continue
        out.append((name, value))
    if not seen:
        out.append(("X-Forwarded-For", source_ip))
    return out


def _identity(conn: ConnectionInfo) -> dict[str, object]:
    identity: dict[str, object] = {"sourceIp": conn.source_ip}
    if conn.user_agent is not None:
        identity["userAgent"] = conn.user_agent
    if conn.access_key is not None:          # AWS_IAM: the signer, as REST APIs' identity carries it
        identity["accessKey"] = conn.access_key
    return identity


def _context(
    conn: ConnectionInfo, route_key: str, event_type: str, request_id: str, now_ms: int,
    message_id: str | None = None,
) -> dict[str, object]:
    """requestContext fields common to CONNECT, MESSAGE and DISCONNECT, in AWS's order (a MESSAGE's
    messageId comes second)."""
    head: dict[str, object] = {"routeKey": route_key}
    if message_id is not None:
        head["messageId"] = message_id
    return {
        **head,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(now_ms),
        "messageDirection": "IN",
        "stage": conn.stage,
        "connectedAt": conn.connected_at_ms,
        "requestTimeEpoch": now_ms,
        "identity": _identity(conn),
        "requestId": request_id,
        "domainName": conn.domain_name,
        "connectionId": conn.connection_id,
        "apiId": conn.api_id,
    }


# A MESSAGE event's requestContext keys in AWS's order (what `_context` builds with a messageId), with the two
# constant values; message_event copies it and fills in the rest.
_MESSAGE_CONTEXT: Final[dict[str, object]] = {
    "routeKey": None, "messageId": None, "eventType": "MESSAGE", "extendedRequestId": None, "requestTime": None,
    "messageDirection": "IN", "stage": None, "connectedAt": None, "requestTimeEpoch": None, "identity": None,
    "requestId": None, "domainName": None, "connectionId": None, "apiId": None,
}


def connect_event(
    conn: ConnectionInfo,
    headers: Pairs,
    query: Pairs,
    stage_variables: dict[str, str] | None,
    request_id: str,
    now_ms: int,
) -> dict[str, object]:
    """The ``$connect`` event (eventType CONNECT) of a Lambda proxy integration.

    Query fields appear only when the URL has a query; stageVariables only when the stage has some.
    """
    single, multi = _fold(_with_forwarded_for(headers, conn.source_ip), _CONNECT_DROPPED)
    context = _context(conn, "$connect", "CONNECT", request_id, now_ms)
    if conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    event: dict[str, object] = {"headers": single, "multiValueHeaders": multi}
    if query:
        q_single, q_multi = _fold_query(query)
        event["queryStringParameters"] = q_single
        event["multiValueQueryStringParameters"] = q_multi
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    event["requestContext"] = context
    event["isBase64Encoded"] = False
    return event


def message_event(
    conn: ConnectionInfo,
    route_key: str,
    body: str,
    is_base64: bool,
    stage_variables: dict[str, str] | None,
    request_id: str,
    message_id: str,
    now_ms: int,
) -> dict[str, object]:
    """A message event (eventType MESSAGE): no headers and no query fields, as on AWS.

    Built per message, so the requestContext is a copy of a template already holding its keys in AWS's order
    (one C-level copy, then plain assignments keep that order) instead of merging dicts."""
    context = _MESSAGE_CONTEXT.copy()
    context["routeKey"] = route_key
    context["messageId"] = message_id
    context["extendedRequestId"] = request_id
    context["requestTime"] = request_time(now_ms)
    context["stage"] = conn.stage
    context["connectedAt"] = conn.connected_at_ms
    context["requestTimeEpoch"] = now_ms
    context["identity"] = _identity(conn)
    context["requestId"] = request_id
    context["domainName"] = conn.domain_name
    context["connectionId"] = conn.connection_id
    context["apiId"] = conn.api_id
    if conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    event: dict[str, object] = {"requestContext": context, "body": body, "isBase64Encoded": is_base64}
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    return event


def disconnect_event(
    conn: ConnectionInfo,
    status_code: int,
    reason: str,
    stage_variables: dict[str, str] | None,
    request_id: str,
    now_ms: int,
) -> dict[str, object]:
    """The ``$disconnect`` event: AWS's fixed headers, close code and reason in requestContext."""
    context: dict[str, object] = {
        "routeKey": "$disconnect",
        "disconnectStatusCode": status_code,
        "eventType": "DISCONNECT",
        "extendedRequestId": request_id,
        "requestTime": request_time(now_ms),
        "messageDirection": "IN",
        "disconnectReason": reason,
        "stage": conn.stage,
        "connectedAt": conn.connected_at_ms,
        "requestTimeEpoch": now_ms,
        "identity": _identity(conn),
        "requestId": request_id,
        "domainName": conn.domain_name,
        "connectionId": conn.connection_id,
        "apiId": conn.api_id,
    }
    if conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    host = conn.domain_name
    event: dict[str, object] = {
        "headers": {"Host": host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""},
        "multiValueHeaders": {"Host": [host], "x-api-key": [""], "X-Forwarded-For": [""], "x-restapi": [""]},
    }
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    event["requestContext"] = context
    event["isBase64Encoded"] = False
    return event


def authorizer_request_event(
    conn: ConnectionInfo,
    method_arn: str,
    headers: Pairs,
    query: Pairs,
    stage_variables: dict[str, str] | None,
    request_id: str,
    now_ms: int,
) -> dict[str, object]:
    """The input of a REQUEST authorizer on ``$connect``.

    Unlike the $connect event, query and stage-variable maps are always present ({} when
    empty) and the Connection/Upgrade headers are kept.
    """
    single, multi = _fold(_with_forwarded_for(headers, conn.source_ip))
    q_single, q_multi = _fold_query(query)
    return {
        "type": "REQUEST",
        "methodArn": method_arn,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": q_single,
        "multiValueQueryStringParameters": q_multi,
        "stageVariables": dict(stage_variables) if stage_variables else {},
        "requestContext": _context(conn, "$connect", "CONNECT", request_id, now_ms),
    }


def error_frame(message: str, connection_id: str, request_id: str) -> bytes:
    """The exact bytes AWS sends on a failed frame.

    ``{"message": "Forbidden", "connectionId":"abc=", "requestId":"xyz="}``: one space after
    ``"message":``, none after the other colons. Values are JSON-escaped.
    """
    return b"".join(
        (
            b'{"message": ',
            orjson.dumps(message),
            b', "connectionId":',
            orjson.dumps(connection_id),
            b', "requestId":',
            orjson.dumps(request_id),
            b"}",
        )
    )
