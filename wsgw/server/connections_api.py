"""The @connections management API, wire-compatible with botocore's `apigatewaymanagementapi` (rest-json)."""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote

from wsgw.authorizers.iam import IamVerifier
from wsgw.aws.management import (
    BAD_REQUEST,
    CONNECTION_ID,
    FORBIDDEN,
    GONE,
    PAYLOAD_TOO_LARGE,
    connection_json,
    too_large_message,
)
from wsgw.gateway import Gateway
from wsgw.registry import OwnerTimeout, RegistryUnavailable
from wsgw.request import HttpRequest
from wsgw.server.http import HttpResponse

ALLOWED_SOURCES_KEPT = 4096     # remembered allowFrom verdicts, by source address (forgotten all at once past it)


class ConnectionsApi:
    """POST (push), GET (describe) and DELETE (close) one connection by id."""

    def __init__(self, gateway: Gateway, iam: IamVerifier | None = None) -> None:
        self.gateway = gateway
        self.max_post_bytes = gateway.api.limits.max_post_bytes
        self.allowed = [ipaddress.ip_network(n) for n in gateway.api.management_allow_from]
        # management.auth: iam → every management call must be SigV4-signed by a configured credential
        self.iam = iam if gateway.api.management.auth == "iam" else None
        # source address → inside management.allowFrom (parsing the address per push showed in its profile)
        self._allowed_sources: dict[str, bool] = {}

    def _source_allowed(self, source_ip: str) -> bool:
        try:
            source = ipaddress.ip_address(source_ip)
        except ValueError:
            return False
        return any(source in network for network in self.allowed)

    def forbidden(self, request: HttpRequest) -> HttpResponse | None:
        """The refusal of a management call, or None: 403 ForbiddenException (as AWS answers an unauthorised
        call) for sources outside management.allowFrom; with `auth: iam`, API Gateway's 403 for a request
        that is not signed, or not signed right, by one of the configured credentials."""
        allowed = self._allowed_sources.get(request.source_ip)
        if allowed is None:
            allowed = self._allowed_sources[request.source_ip] = self._source_allowed(request.source_ip)
            if len(self._allowed_sources) > ALLOWED_SOURCES_KEPT:
                self._allowed_sources.clear()
        if not allowed:
            return HttpResponse.aws_error(403, FORBIDDEN,
                                          f"Forbidden: {request.source_ip} may not call the management API "
                                          "(see management.allowFrom)")
        if self.iam is not None:
            from wsgw.aws.sigv4 import SignatureError

            try:
                self.iam.verify(request)
            except SignatureError as exc:
                metrics = self.gateway.metrics
                metrics.count(metrics.management_refused, type=exc.error_type)
                return HttpResponse.aws_error(exc.status, exc.error_type, exc.message)
        return None

    async def handle(self, request: HttpRequest, encoded_id: str) -> HttpResponse:
        refused = self.forbidden(request)
        if refused is not None:
            return refused
        connection_id = unquote(encoded_id)
        if not CONNECTION_ID.match(connection_id):
            return HttpResponse.aws_error(400, BAD_REQUEST, f"Invalid connectionId: {connection_id[:128]}")
        try:
            if request.method == "POST":
                return await self._post(connection_id, request.body)
            if request.method == "GET":
                record = await self.gateway.get(connection_id)
                if record is None:
                    return gone()
                return HttpResponse.json(200, connection_json(
                    record.connected_at_ms, record.last_active_ms, record.source_ip, record.user_agent))
            if request.method == "DELETE":
                return HttpResponse(204) if await self.gateway.delete(connection_id) else gone()
        except OwnerTimeout as exc:           # the owning node is alive but silent: the outcome is unknown
            return HttpResponse.aws_error(504, "GatewayTimeoutException", f"Connection's node did not answer: {exc}")
        except RegistryUnavailable as exc:
            return HttpResponse.aws_error(503, "ServiceUnavailableException", f"Registry unavailable: {exc}")
        return HttpResponse.aws_error(405, "MethodNotAllowedException",
                                      f"{request.method} is not supported on @connections; use POST, GET or DELETE")

    async def broadcast(self, request: HttpRequest) -> HttpResponse:
        """`POST /{stage}/@broadcast` (beyond AWS): one frame to every connection on every node.

        200 `{"delivered": N}` counts the sockets that took the frame, once each node answered.
        """
        refused = self.forbidden(request)
        if refused is not None:
            return refused
        if request.method != "POST":
            return HttpResponse.aws_error(405, "MethodNotAllowedException", "use POST /{stage}/@broadcast")
        if len(request.body) > self.max_post_bytes:
            return too_large(self.max_post_bytes)
        try:
            delivered = await self.gateway.broadcast(request.body)
        except RegistryUnavailable as exc:
            return HttpResponse.aws_error(503, "ServiceUnavailableException", f"Registry unavailable: {exc}")
        return HttpResponse.json(200, {"delivered": delivered})

    async def _post(self, connection_id: str, data: bytes) -> HttpResponse:
        if len(data) > self.max_post_bytes:
            return too_large(self.max_post_bytes)
        return HttpResponse(200) if await self.gateway.post(connection_id, data) else gone()


def gone() -> HttpResponse:
    """410 with the header botocore needs to raise GoneException (AWS sends an empty body)."""
    return HttpResponse.aws_error(410, GONE, None)


def too_large(limit: int) -> HttpResponse:
    return HttpResponse.aws_error(413, PAYLOAD_TOO_LARGE, too_large_message(limit))
