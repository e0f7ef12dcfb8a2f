"""The @groups management paths (beyond AWS, in the @connections style) and listing connections by principal or
group. Same authorization as @connections (management.allowFrom), same error shapes (x-amzn-ErrorType).

- PUT    /{stage}/@groups/{group}/members/{connectionId}[?since=N]  join (200; 410 GoneException if unknown)
- DELETE /{stage}/@groups/{group}/members/{connectionId}            leave (200 {"left": bool}; 410 if unknown)
- POST   /{stage}/@groups/{group}[?exclude=connectionId]            body = one frame → 200 {"delivered": N}
- GET    /{stage}/@groups/{group}[?limit=&nextToken=]               presence {"count", "members", "nextToken"}
- GET    /{stage}/@connections?principalId=P | ?group=G             the connections of a user or a group
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, unquote

from wsgw.aws.management import BAD_REQUEST, CONNECTION_ID, connection_json, iso8601
from wsgw.gateway import Gateway
from wsgw.group_config import GROUP_NAME_RULE, valid_group
from wsgw.registry import OwnerTimeout, RegistryUnavailable
from wsgw.registry.base import Member, MemberPage
from wsgw.request import HttpRequest
from wsgw.server.connections_api import ConnectionsApi, gone, too_large
from wsgw.server.http import HttpResponse

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def bad_request(message: str) -> HttpResponse:
    return HttpResponse.aws_error(400, BAD_REQUEST, message)


def member_json(member: Member) -> dict[str, object]:
    return {"connectionId": member.connection_id, "principalId": member.principal_id,
            "connectedAt": iso8601(member.connected_at_ms)}


class GroupsApi:
    """Group membership, publish and presence over HTTP; every operation is Gateway.groups'."""

    def __init__(self, gateway: Gateway, connections: ConnectionsApi) -> None:
        self.gateway = gateway
        self.groups = gateway.groups
        self.connections = connections
        self.max_post_bytes = gateway.api.limits.max_post_bytes

    async def handle(self, request: HttpRequest, rest: list[str]) -> HttpResponse:
        """`rest`: the path segments after @groups (still percent-encoded)."""
        return await self._guarded(request, lambda: self._route(request, rest))

    async def list_connections(self, request: HttpRequest) -> HttpResponse:
        """`GET /{stage}/@connections?principalId=` or `?group=`: AWS has no way to list connections."""
        return await self._guarded(request, lambda: self._list(request))

    async def _guarded(self, request: HttpRequest,
                       answer: Callable[[], Awaitable[HttpResponse]]) -> HttpResponse:
        refused = self.connections.forbidden(request)
        if refused is not None:
            return refused
        try:
            return await answer()
        except OwnerTimeout as exc:
            return HttpResponse.aws_error(504, "GatewayTimeoutException", f"Connection's node did not answer: {exc}")
        except RegistryUnavailable as exc:
            return HttpResponse.aws_error(503, "ServiceUnavailableException", f"Registry unavailable: {exc}")

    async def _route(self, request: HttpRequest, rest: list[str]) -> HttpResponse:
        if not rest or not rest[0]:
            return bad_request("Use /{stage}/@groups/{group} or /{stage}/@groups/{group}/members/{connectionId}")
        group = unquote(rest[0])
        if not valid_group(group):
            return bad_request(f"Invalid group name: a group name is {GROUP_NAME_RULE}")
        query = parse_qs(request.query_string, keep_blank_values=True)
        if len(rest) == 1:
            if request.method == "POST":
                return await self._publish(request, group, query)
            if request.method == "GET":
                return await self._presence(group, query)
            return not_allowed(request.method, "POST or GET /{stage}/@groups/{group}")
        if len(rest) != 3 or rest[1] != "members" or not rest[2]:
            return bad_request("Use /{stage}/@groups/{group}/members/{connectionId}")
        connection_id = unquote(rest[2])
        if not CONNECTION_ID.match(connection_id):
            return bad_request(f"Invalid connectionId: {connection_id[:128]}")
        if request.method == "PUT":
            since_text = _one(query, "since")
            if since_text is not None and not since_text.isdigit():
                return bad_request("since must be a sequence number (a whole number >= 0)")
            outcome = await self.groups.join(group, connection_id, None if since_text is None else int(since_text))
            return gone() if outcome is None else HttpResponse.json(200, outcome)
        if request.method == "DELETE":
            left = await self.groups.leave(group, connection_id)
            return gone() if left is None else HttpResponse.json(200, {"left": left})
        return not_allowed(request.method, "PUT or DELETE /{stage}/@groups/{group}/members/{connectionId}")

    async def _publish(self, request: HttpRequest, group: str, query: dict[str, list[str]]) -> HttpResponse:
        if len(request.body) > self.max_post_bytes:
            return too_large(self.max_post_bytes)
        exclude = _one(query, "exclude") or None
        if exclude is not None and not CONNECTION_ID.match(exclude):
            return bad_request(f"Invalid exclude connectionId: {exclude[:128]}")
        delivered = await self.groups.publish(group, request.body, exclude)
        return HttpResponse.json(200, {"delivered": delivered})

    async def _presence(self, group: str, query: dict[str, list[str]]) -> HttpResponse:
        page = await self._page(group, query)
        if isinstance(page, HttpResponse):
            return page
        return HttpResponse.json(200, _page_json(page, "members"))

    async def _page(self, group: str, query: dict[str, list[str]]) -> MemberPage | HttpResponse:
        limit_text = _one(query, "limit")
        if limit_text is not None and (not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE):
            return bad_request(f"limit must be a whole number from 1 to {MAX_PAGE}")
        limit = DEFAULT_PAGE if limit_text is None else int(limit_text)
        token = _one(query, "nextToken") or None
        if token is not None and (len(token) > 64 or not all(c.isdigit() or c == "." for c in token)):
            return bad_request("nextToken is not one this API returned")
        return await self.groups.presence(group, limit, token)

    async def _list(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return not_allowed(request.method, "GET /{stage}/@connections?principalId=... or ?group=...")
        query = parse_qs(request.query_string, keep_blank_values=True)
        group, principal = _one(query, "group"), _one(query, "principalId")
        if (group is None) == (principal is None):
            return bad_request("Use /{stage}/@connections/{connectionId}, or list with ?principalId= or ?group=")
        if group is not None:
            if not valid_group(group):
                return bad_request(f"Invalid group name: a group name is {GROUP_NAME_RULE}")
            page = await self._page(group, query)
            if isinstance(page, HttpResponse):
                return page
            return HttpResponse.json(200, _page_json(page, "connections"))
        assert principal is not None
        if not principal or len(principal) > 1024:
            return bad_request("principalId must be 1-1024 characters")
        records = await self.gateway.connections_of(principal)
        return HttpResponse.json(200, {"count": len(records), "connections": [
            {"connectionId": r.connection_id, "principalId": principal,
             **connection_json(r.connected_at_ms, r.last_active_ms, r.source_ip, r.user_agent)} for r in records]})


def _page_json(page: MemberPage, name: str) -> dict[str, object]:
    body: dict[str, object] = {"count": page.count, name: [member_json(m) for m in page.members]}
    if page.next_token is not None:
        body["nextToken"] = page.next_token
    return body


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return None if not values else values[0]


def not_allowed(method: str, use: str) -> HttpResponse:
    return HttpResponse.aws_error(405, "MethodNotAllowedException", f"{method} is not supported here; use {use}")
