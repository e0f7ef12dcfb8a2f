"""Dispatch of plain HTTP requests: health, metrics, the @connections, @groups, @cache and @inspect paths, then the
REST front."""

from __future__ import annotations

from urllib.parse import unquote

from wsgw.authorizers.iam import IamVerifier
from wsgw.cache import CacheUnavailable
from wsgw.gateway import Gateway
from wsgw.metrics import CONTENT_TYPE
from wsgw.request import HttpRequest
from wsgw.rest.front import RestFront
from wsgw.server import fdlimit
from wsgw.server.connections_api import ConnectionsApi, too_large
from wsgw.server.groups_api import GroupsApi
from wsgw.server.http import HttpResponse, plain_error
from wsgw.server.inspector import InspectorDoor


class HttpRouter:
    """Maps a request to its answer; no sockets here."""

    def __init__(self, gateway: Gateway, rest: RestFront, iam: IamVerifier | None = None) -> None:
        self.gateway = gateway
        self.stage = gateway.api.stage
        self.stage_prefix = f"/{self.stage}"
        self.connections = ConnectionsApi(gateway, iam)
        self.limits = gateway.api.limits
        self.rest = rest
        self.groups = GroupsApi(gateway, self.connections)
        self.inspector = InspectorDoor(gateway, self.connections)
        limits = self.limits
        self._management_limit = (limits.max_post_bytes, too_large(limits.max_post_bytes))
        self._no_body = (0, plain_error(413, "Request Entity Too Large: this path takes no body"))
        self._rest_limit = (limits.max_http_body_bytes, plain_error(
            413, f"Request Entity Too Large: the limit is {limits.max_http_body_bytes} bytes"))

    def body_limit_for(self, raw_path: str) -> tuple[int, HttpResponse]:
        """How large a body this path accepts, and the 413 it answers beyond that (built once: this runs for
        every request, the answer is rarely sent)."""
        if "/@connections/" in raw_path or "/@groups/" in raw_path or raw_path.endswith("/@broadcast"):
            return self._management_limit
        if not raw_path.startswith(self.stage_prefix):      # /health, /metrics: no bodies
            return self._no_body
        return self._rest_limit

    async def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.raw_path
        if path == "/health":
            return self.health()
        if path == "/metrics":        # who may read it is who may manage connections: management.allowFrom
            refused = self.connections.forbidden(request)
            if refused is not None:
                return refused
            return HttpResponse(200, self.gateway.metrics.render(), [("Content-Type", CONTENT_TYPE)])
        parts = path.split("/")
        if len(parts) >= 2 and unquote(parts[1]) == self.stage:
            if len(parts) >= 3 and parts[2] == "@groups":
                return await self.groups.handle(request, parts[3:])
            if len(parts) == 3 and parts[2] == "@connections" and request.query_string:
                return await self.groups.list_connections(request)
            if len(parts) >= 3 and parts[2] == "@connections":
                if len(parts) != 4 or not parts[3]:
                    return HttpResponse.aws_error(400, "BadRequestException",
                                                  "Use /{stage}/@connections/{connectionId}")
                return await self.connections.handle(request, parts[3])
            if len(parts) == 3 and parts[2] == "@broadcast":
                return await self.connections.broadcast(request)
            if len(parts) == 3 and parts[2] == "@cache":
                return await self.flush_cache(request)
            if len(parts) == 3 and parts[2] == "@inspect":
                return self.inspector.page(request)
            answer = await self.rest.handle(request, "/" + "/".join(parts[2:]))
            if answer is not None:
                return answer
            if len(parts) == 2 or (len(parts) == 3 and parts[2] == ""):
                return plain_error(426, f"Upgrade Required: open a WebSocket to /{self.stage}")
        return plain_error(404, "Not Found")

    async def flush_cache(self, request: HttpRequest) -> HttpResponse:
        """`DELETE /{stage}/@cache`: AWS's FlushStageCache for this stage (every version's entries), for the
        callers the management API admits (management.allowFrom, then `auth: iam`)."""
        refused = self.connections.forbidden(request)
        if refused is not None:
            return refused
        if request.method != "DELETE":
            return HttpResponse.aws_error(405, "MethodNotAllowedException", "Use DELETE /{stage}/@cache")
        try:
            removed = await self.rest.flush_cache()
        except CacheUnavailable as exc:
            return HttpResponse.aws_error(503, "ServiceUnavailableException", f"the cache store failed: {exc}")
        if removed is None:
            return HttpResponse.aws_error(404, "NotFoundException", f"stage {self.stage} has no cache "
                                          "(caching.cacheClusterEnabled is off)")
        return HttpResponse.json(202, {"flushed": removed})

    def health(self) -> HttpResponse:
        gateway = self.gateway
        ok = gateway.accepting
        payload = {"status": "ok" if ok else "stopping", "node": gateway.node_id, "stage": self.stage,
                   "connections": len(gateway.connections), **gateway.registry.health(),
                   **fdlimit.health_fields()}
        return HttpResponse.json(200 if ok else 503, payload)
