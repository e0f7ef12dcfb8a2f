"""`HTTP_PROXY` (as AWS means it: the request passed through): forward the raw message body to `uri`, the
connection's identity in headers; the answer's body becomes the route response.

Headers sent: X-Connection-Id, X-Route-Key, X-Request-Id, X-Event-Type, X-Stage, X-Api-Id, X-Source-Ip,
X-Authorizer-Principal-Id (when an authorizer allowed the connection), plus the `headers:` option. A 5xx
answer, a refused connection or a redirect to another host is a failed invocation (AWS's error frame); any
other status passes through, so a 401/403 from the $connect backend refuses the handshake with it.

On a REST route the request is proxied as AWS's HTTP_PROXY proxies it: the client's end-to-end headers and
query string go along (after the route's `requestParameters` changed them), and `overwrite:path` replaces the
URI's path (`MAPPED_PATH`, set by the REST front around the call). Client headers never replace the identity
headers above.
"""

from __future__ import annotations

import base64
from contextvars import ContextVar
from typing import Any

from yarl import URL

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, HttpOptions, IntegrationSpec
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.http_client import HttpAnswer, describe, send, shared_session

#: The path a REST route's `overwrite:path` chose for the call in progress (None: the URI's own).
MAPPED_PATH: ContextVar[str | None] = ContextVar("wsgw_mapped_path", default=None)
#: Client headers never forwarded: hop-by-hop and framing (the session sets its own), and the identity headers.
_NOT_FORWARDED = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
                            "trailer", "upgrade", "proxy-connection", "expect", "x-connection-id", "x-route-key",
                            "x-request-id", "x-event-type", "x-stage", "x-api-id", "x-source-ip",
                            "x-authorizer-principal-id"})


class HttpProxyIntegration(Integration):
    """Options: uri (required), method (POST), headers, contentType, connectTimeoutMs."""

    type_name = "http_proxy"

    def __init__(self, spec: IntegrationSpec, function_name: str, resources: Resources, uri: URL, method: str,
                 headers: dict[str, str], connect_timeout_s: float) -> None:
        super().__init__(spec, function_name)
        self.resources = resources
        self.uri = uri
        self.method = method
        self.headers = headers
        self.connect_timeout_s = connect_timeout_s

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> HttpProxyIntegration:
        options = spec.options
        assert isinstance(options, HttpOptions)
        headers = {"Content-Type": options.content_type, **options.headers}
        return cls(spec, function_name, resources, URL(options.uri), options.method, headers,
                   options.connect_timeout_ms / 1000)

    def identity_headers(self, event: dict[str, Any]) -> dict[str, str]:
        ctx = event.get("requestContext") or {}
        headers = {
            "X-Connection-Id": str(ctx.get("connectionId", "")),
            "X-Route-Key": str(ctx.get("routeKey", "")),
            "X-Request-Id": str(ctx.get("requestId", "")),
            "X-Event-Type": str(ctx.get("eventType", "")),
            "X-Stage": str(ctx.get("stage", "")),
            "X-Api-Id": str(ctx.get("apiId", "")),
            "X-Source-Ip": str((ctx.get("identity") or {}).get("sourceIp", "")),
        }
        authorizer = ctx.get("authorizer")
        if isinstance(authorizer, dict) and authorizer.get("principalId") is not None:
            headers["X-Authorizer-Principal-Id"] = str(authorizer["principalId"])
        return headers

    def request_body(self, event: dict[str, Any]) -> bytes:
        """The backend's body: the client's, as it came."""
        raw = event.get("body")
        if not isinstance(raw, str):
            return b""
        return base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()

    async def call(self, event: dict[str, Any]) -> HttpAnswer:
        uri = self.uri
        client: dict[str, str] = {}
        if event.get("version") == "2.0" and isinstance(event.get("headers"), dict):    # a REST request
            client = {k: str(v) for k, v in event["headers"].items() if k.lower() not in _NOT_FORWARDED}
            path = MAPPED_PATH.get()
            if path is not None:
                uri = uri.with_path(path, encoded=False)
            query = event.get("rawQueryString")
            if isinstance(query, str) and query:
                uri = uri.with_query(f"{uri.raw_query_string}&{query}" if uri.raw_query_string else query)
        headers = {**client, **self.headers, **self.identity_headers(event)}
        return await send(shared_session(self.resources), self.method, uri, self.request_body(event), headers,
                          self.connect_timeout_s, self.spec.timeout_ms / 1000)

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        answer = await self.call(event)
        if answer.status >= 500:
            raise IntegrationFailed(f"{self.method} {self.uri} answered {describe(answer)}")
        # The backend's content type travels with the body (REST routes answer with it; a WebSocket route
        # response ignores headers). Framing headers are the node's own to set.
        passed = {"content-type": answer.headers["Content-Type"]} if "Content-Type" in answer.headers else {}
        try:
            text = answer.body.decode("utf-8")
        except UnicodeDecodeError:
            return {"statusCode": answer.status, "body": base64.b64encode(answer.body).decode("ascii"),
                    "isBase64Encoded": True, "headers": passed}
        return {"statusCode": answer.status, "body": text or None, "headers": passed}
