"""The `$join` / `$leave` route events: wsgw's own (AWS has no groups), shaped like a MESSAGE event so that a
handler written for AWS's events reads them with the code it has (docs/groups.md, "The $join and $leave
routes").

`requestContext` is a MESSAGE event's with `routeKey` "$join"/"$leave" and `eventType` "JOIN"/"LEAVE"; the body
is a JSON string `{"group", "event", "reason"}` (+ `"since"` for a join that asked for recovery). Pure: no I/O.
"""

from __future__ import annotations

from typing import Literal

import orjson

from wsgw.aws.websocket_events import ConnectionInfo, message_event

# Why a member left: it asked (DELETE, a pusher's leave), its connection closed, or its node died and a survivor
# removed it.
LeaveReason = Literal["leave", "close", "nodeDown"]


def group_event(conn: ConnectionInfo, event: Literal["join", "leave"], group: str, reason: str,
                since: int | None, stage_variables: dict[str, str] | None, request_id: str, message_id: str,
                now_ms: int) -> dict[str, object]:
    """One $join or $leave event for one member of one group."""
    body: dict[str, object] = {"group": group, "event": event, "reason": reason}
    if since is not None:
        body["since"] = since
    route_key = "$join" if event == "join" else "$leave"
    built = message_event(conn, route_key, orjson.dumps(body).decode(), False, stage_variables, request_id,
                          message_id, now_ms)
    context = built["requestContext"]
    assert isinstance(context, dict)
    context["eventType"] = event.upper()
    return built
