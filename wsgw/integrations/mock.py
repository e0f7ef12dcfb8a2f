"""`MOCK`, as AWS runs it: no backend. The request template's output `{"statusCode": N}` picks the integration
response (no request template: the `statusCode` option, 200), whose response template is the answer; the
integration's own body is empty, as on AWS. `response:` is wsgw's shorthand for a `$default` integration
response with that `$default` template (`$context.*`, `$stageVariables.*` as in any template)."""

from __future__ import annotations

from typing import Any

import orjson

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec, MockOptions
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.mapping import NonProxyMapping

NO_HEADERS: dict[str, str] = {}


class MockIntegration(Integration):
    """Answers without a backend: ping/pong routes, fixed answers, CORS-style canned responses."""

    type_name = "mock"

    def __init__(self, spec: IntegrationSpec, function_name: str, options: MockOptions) -> None:
        super().__init__(spec, function_name)
        self.status = options.status_code
        self.mapping = NonProxyMapping(options.mapping, f"MOCK {spec.key}")

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> MockIntegration:
        assert isinstance(spec.options, MockOptions)
        return cls(spec, function_name, spec.options)

    def status_for(self, event: dict[str, Any]) -> int:
        """AWS: the request template decides the status (`{"statusCode": 200}`); wsgw: the option, without one."""
        if not self.mapping.transforms_requests:
            return self.status
        text = self.mapping.request_body(event)
        try:
            found = orjson.loads(text).get("statusCode") if text.strip() else None
        except (orjson.JSONDecodeError, AttributeError):
            found = None
        if isinstance(found, str) and found.isdigit():
            found = int(found)
        if isinstance(found, bool) or not isinstance(found, int):
            raise IntegrationFailed(f"{self.mapping.what}: the request template gave no integer statusCode")
        return found

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        status = self.status_for(event)
        chosen = self.mapping.response_for(status)
        if chosen is None:
            return {"statusCode": status, "body": None}
        return self.mapping.respond(event, chosen, status, NO_HEADERS, b"")
