"""`mock`: a static response, optionally filled from `$context.*` and `$request.body.*` variables."""

from __future__ import annotations

import re
from typing import Any

import orjson

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec, MockOptions
from wsgw.integrations.base import Integration, Resources

VARIABLE = re.compile(r"\$(context|request\.body|stageVariables)\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)")


def _lookup(root: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(root, dict) or part not in root:
            return ""
        root = root[part]
    return root


class MockIntegration(Integration):
    """Answers without a backend: useful to test clients, and for ping/pong routes."""

    type_name = "mock"

    def __init__(self, spec: IntegrationSpec, function_name: str, response: str, status: int) -> None:
        super().__init__(spec, function_name)
        self.response = response
        self.status = status
        self.templated = VARIABLE.search(response) is not None

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> MockIntegration:
        assert isinstance(spec.options, MockOptions)
        return cls(spec, function_name, spec.options.response, spec.options.status_code)

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        body = self.response
        if self.templated:
            body = VARIABLE.sub(lambda m: self._value(event, m.group(1), m.group(2)), body)
        return {"statusCode": self.status, "body": body}

    @staticmethod
    def _value(event: dict[str, Any], scope: str, path: str) -> str:
        if scope == "context":
            value = _lookup(event.get("requestContext", {}), path)
        elif scope == "stageVariables":
            value = _lookup(event.get("stageVariables") or {}, path)
        else:
            try:
                value = _lookup(orjson.loads(event.get("body") or "null"), path)
            except orjson.JSONDecodeError:
                value = ""
        return value if isinstance(value, str) else orjson.dumps(value).decode()
