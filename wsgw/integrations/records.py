"""What the service and queue integrations read from an event, for both fronts: the body as sent and the
identity a worker needs (connectionId, routeKey, requestId, stage, principal, authorizer context) as flat
string fields, so a record is read the same from any language (Redis stream fields, NATS and AMQP headers)."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from wsgw.aws.parameter_mapping import MappingSource

IDENTITY_FIELDS = ("connectionId", "routeKey", "requestId", "eventType", "stage", "apiId", "sourceIp", "principalId",
                   "authorizer")


def body_bytes(event: dict[str, Any]) -> bytes:
    """The message or request body as the client sent it (base64 undone)."""
    raw = event.get("body")
    if not isinstance(raw, str):
        return b""
    return base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()


def body_text(event: dict[str, Any]) -> str:
    raw = event.get("body")
    if not isinstance(raw, str):
        return ""
    return base64.b64decode(raw).decode("utf-8", "replace") if event.get("isBase64Encoded") else raw


def _authorizer(ctx: dict[str, Any]) -> dict[str, Any]:
    """The authorizer context: WebSocket keeps it flat; REST (payload 2.0) under `lambda` or `jwt`."""
    auth = ctx.get("authorizer")
    if not isinstance(auth, dict):
        return {}
    if isinstance(auth.get("lambda"), dict):
        return {**auth["lambda"], **({"principalId": auth["principalId"]} if "principalId" in auth else {})}
    if isinstance(auth.get("jwt"), dict):
        claims = auth["jwt"].get("claims") or {}
        return {"principalId": claims.get("sub"), "claims": claims} if isinstance(claims, dict) else {}
    return auth


def identity(event: dict[str, Any]) -> dict[str, str]:
    """The caller's identity as strings; absent values are left out."""
    ctx = event.get("requestContext") or {}
    auth = _authorizer(ctx)
    source_ip = (ctx.get("identity") or {}).get("sourceIp") or (ctx.get("http") or {}).get("sourceIp")
    fields: dict[str, Any] = {
        "connectionId": ctx.get("connectionId"),
        "routeKey": ctx.get("routeKey"),
        "requestId": ctx.get("requestId"),
        "eventType": ctx.get("eventType"),
        "stage": ctx.get("stage"),
        "apiId": ctx.get("apiId"),
        "sourceIp": source_ip,
        "principalId": auth.get("principalId"),
    }
    out = {name: str(value) for name, value in fields.items() if value is not None and value != ""}
    rest = {k: v for k, v in auth.items() if k != "principalId"}
    if rest:
        out["authorizer"] = orjson.dumps(rest, default=str).decode()
    return out


def mapping_source(event: dict[str, Any]) -> MappingSource:
    """The request as parameter mappings and templates see it."""
    headers = event.get("headers") or {}
    return MappingSource(
        body=body_text(event),
        context=event.get("requestContext") or {},
        stage_variables=event.get("stageVariables") or {},
        headers={str(k).lower(): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
        query=event.get("queryStringParameters") or {},
        path=event.get("pathParameters") or {},
    )
