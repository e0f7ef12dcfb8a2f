"""`HTTP` (non-proxy, as AWS means it): the request template builds the backend's body, the integration response
matching the backend's status (and its template) builds the client's answer (wsgw.integrations.mapping).

With no templates it behaves as `HTTP_PROXY`. A 5xx that no integration response names fails the call (AWS's
error frame); any other status without a matching response passes through.
"""

from __future__ import annotations

from typing import Any

from yarl import URL

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, HttpOptions, IntegrationSpec
from wsgw.integrations.base import IntegrationFailed, Resources
from wsgw.integrations.http_client import describe
from wsgw.integrations.http_proxy import HttpProxyIntegration
from wsgw.integrations.mapping import NonProxyMapping, passed_through


class HttpIntegration(HttpProxyIntegration):
    """Options: HTTP_PROXY's, plus requestTemplates, templateSelectionExpression, passthroughBehavior,
    integrationResponses."""

    type_name = "http"

    def __init__(self, spec: IntegrationSpec, function_name: str, resources: Resources, uri: URL, method: str,
                 headers: dict[str, str], connect_timeout_s: float, mapping: NonProxyMapping) -> None:
        super().__init__(spec, function_name, resources, uri, method, headers, connect_timeout_s)
        self.mapping = mapping

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> HttpIntegration:
        options = spec.options
        assert isinstance(options, HttpOptions) and options.mapping is not None
        headers = {"Content-Type": options.content_type, **options.headers}
        return cls(spec, function_name, resources, URL(options.uri), options.method, headers,
                   options.connect_timeout_ms / 1000, NonProxyMapping(options.mapping, f"HTTP {spec.key}"))

    def request_body(self, event: dict[str, Any]) -> bytes:
        if not self.mapping.transforms_requests:
            return super().request_body(event)
        return self.mapping.request_body(event).encode()

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        if self.mapping.options.responses is None:
            return await super().invoke(event, context)
        answer = await self.call(event)
        chosen = self.mapping.response_for(answer.status)
        if chosen is None:
            if answer.status >= 500:
                raise IntegrationFailed(f"{self.method} {self.uri} answered {describe(answer)}")
            return passed_through(answer.status, answer.headers, answer.body)
        return self.mapping.respond(event, chosen, answer.status, answer.headers, answer.body)
