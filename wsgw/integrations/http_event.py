"""`http_event` (wsgw's own): POST the AWS-shaped event as JSON to `uri`; read the answer like a Lambda proxy
result. (Not AWS's HTTP_PROXY, which passes the request through: that is `HTTP_PROXY`.)

For backends in any language: the backend is a Lambda handler behind HTTP. A non-2xx answer or a body that
is not JSON is a failed invocation (the client gets AWS's error frame; the cause goes to the log).
"""

from __future__ import annotations

from typing import Any

import orjson
from yarl import URL

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, HttpEventOptions, IntegrationSpec
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.http_client import describe, send, shared_session


class HttpEventIntegration(Integration):
    """Options: uri (required), headers, connectTimeoutMs."""

    type_name = "http_event"

    def __init__(self, spec: IntegrationSpec, function_name: str, resources: Resources, uri: URL,
                 headers: dict[str, str], connect_timeout_s: float) -> None:
        super().__init__(spec, function_name)
        self.resources = resources
        self.uri = uri
        self.headers = {"Content-Type": "application/json", **headers}
        self.connect_timeout_s = connect_timeout_s

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> HttpEventIntegration:
        options = spec.options
        assert isinstance(options, HttpEventOptions)
        return cls(spec, function_name, resources, URL(options.uri), dict(options.headers),
                   options.connect_timeout_ms / 1000)

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        headers = {**self.headers, "X-Amz-Request-Id": context.aws_request_id}
        answer = await send(shared_session(self.resources), "POST", self.uri, orjson.dumps(event), headers,
                            self.connect_timeout_s, self.spec.timeout_ms / 1000)
        if not 200 <= answer.status < 300:
            raise IntegrationFailed(f"{self.uri} answered {describe(answer)}")
        if not answer.body.strip():
            return None
        try:
            return orjson.loads(answer.body)
        except orjson.JSONDecodeError as exc:
            raise IntegrationFailed(f"{self.uri} answered a body that is not JSON ({exc}): {describe(answer)}") from exc
