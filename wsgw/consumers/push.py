"""A push from a worker, read from any of the queue systems, and the result reported back; pure.

A push is a JSON object `{"connectionId": "...", "data": ...}` or `{"group": "...", "data": ...}` (a string `data`
is the text frame as is, any other JSON value is sent as its JSON text; `dataBase64` sends a binary frame), or, for
workers that would rather not wrap the frame, identity in headers/fields (`connectionId` or `group`) and the frame
as the payload (`data` field for Redis). An optional `id` is echoed in the result.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from wsgw.group_config import valid_group

MAX_ID_CHARS = 128


class Poison(Exception):
    """A push that can never be delivered (malformed, oversized): dead-lettered with this reason, never retried."""


@dataclass(frozen=True, slots=True)
class Push:
    connection_id: str | None
    group: str | None
    data: bytes
    binary: bool
    push_id: str | None = None


def _target(connection_id: object, group: object) -> tuple[str | None, str | None]:
    if (connection_id is None) == (group is None):
        raise Poison("name exactly one of connectionId or group")
    if connection_id is not None and (not isinstance(connection_id, str) or not 0 < len(connection_id) <= 128):
        raise Poison("connectionId must be a string of 1-128 characters")
    if group is not None and (not isinstance(group, str) or not valid_group(group)):
        raise Poison("group is not a valid group name")
    return connection_id, group


def read_push(payload: bytes, headers: Mapping[str, str], max_bytes: int) -> Push:
    """The push in a message (JSON envelope, or headers naming the target with the payload as the frame)."""
    if len(payload) > max_bytes + 1024:
        raise Poison(f"oversized: {len(payload)} bytes (maxBytes {max_bytes})")
    if "connectionId" in headers or "group" in headers:
        connection_id, group = _target(headers.get("connectionId"), headers.get("group"))
        binary = headers.get("isBase64Encoded") == "true"
        data = payload
        if binary:
            try:
                data = base64.b64decode(payload, validate=True)
            except binascii.Error:
                raise Poison("isBase64Encoded but the payload is not base64") from None
        return _checked(Push(connection_id, group, data, binary, headers.get("id")), max_bytes)
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise Poison("malformed: not JSON and no connectionId/group header") from None
    if not isinstance(doc, dict):
        raise Poison("malformed: a push is a JSON object")
    connection_id, group = _target(doc.get("connectionId"), doc.get("group"))
    push_id = doc.get("id")
    if push_id is not None and (not isinstance(push_id, str | int) or len(str(push_id)) > MAX_ID_CHARS):
        raise Poison("id must be a short string or number")
    if "dataBase64" in doc:
        try:
            data, binary = base64.b64decode(str(doc["dataBase64"]), validate=True), True
        except binascii.Error:
            raise Poison("dataBase64 is not base64") from None
    elif "data" in doc:
        value = doc["data"]
        data, binary = (value.encode() if isinstance(value, str) else orjson.dumps(value)), False
    else:
        raise Poison("malformed: no data (or dataBase64)")
    return _checked(Push(connection_id, group, data, binary, None if push_id is None else str(push_id)), max_bytes)


def read_fields(fields: Mapping[bytes, bytes], max_bytes: int) -> Push:
    """A Redis stream entry: `payload` (a JSON push) or `connectionId`/`group` + `data` fields."""
    text = {k.decode("utf-8", "replace"): v for k, v in fields.items()}
    if "payload" in text:
        return read_push(text["payload"], {}, max_bytes)
    headers = {k: v.decode("utf-8", "replace") for k, v in text.items() if k != "data"}
    if "data" not in text:
        raise Poison("malformed: no data (or payload) field")
    return read_push(text["data"], headers, max_bytes)


def _checked(push: Push, max_bytes: int) -> Push:
    if len(push.data) > max_bytes:
        raise Poison(f"oversized: the frame is {len(push.data)} bytes (maxBytes {max_bytes})")
    if not push.binary:
        try:
            push.data.decode("utf-8")
        except UnicodeDecodeError:
            raise Poison("a text frame must be UTF-8 (send binary as dataBase64)") from None
    return push


def result(push: Push, delivered: int | bool, source_id: str | None) -> dict[str, object]:
    """What the worker reads back: status delivered/gone (a group: how many sockets took it)."""
    out: dict[str, object] = {"id": push.push_id or source_id}
    if push.connection_id is not None:
        out["connectionId"] = push.connection_id
        out["status"] = "delivered" if delivered else "gone"
    else:
        out["group"] = push.group
        out["status"] = "delivered"
        out["delivered"] = int(delivered)
    return out


def dead_letter(reason: str, source_id: str | None) -> dict[str, str]:
    return {"reason": reason, **({"sourceId": source_id} if source_id else {})}
