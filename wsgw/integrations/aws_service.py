"""`AWS` (what WebSocket APIs use for service integrations): `uri: arn:aws:apigateway:{region}:{service}:
action/{Action}` or `…:path/{path}`; the request template (wsgw.aws.templates, chosen as AWS does by
wsgw.aws.integration_response) builds the service request, e.g. AWS's SQS example
`Action=SendMessage&MessageBody=$input.body` as `application/x-www-form-urlencoded`; integration responses
(selected by the service's status) and their templates shape the client's answer.

An `action/` URI is sent as AWS does: to the service's root, `Action` (and the API `Version`) in the query for
form-encoded bodies, `X-Amz-Target` for services speaking AWS JSON. A service error without a matching
integration response is logged with its code and answered with AWS's error frame.
"""

from __future__ import annotations

from typing import Any

from yarl import URL

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.config.service_integrations import AwsServiceOptions
from wsgw.integrations.aws_client import (
    PREFIX_SERVICES,
    AwsCaller,
    botocore_session,
    credentials_for,
    endpoint_for,
    environ,
    fail,
    service_error,
)
from wsgw.integrations.base import Integration, Resources
from wsgw.integrations.http_client import HttpAnswer
from wsgw.integrations.mapping import NonProxyMapping, passed_through

FORM = "application/x-www-form-urlencoded"


class AwsServiceIntegration(Integration):
    """Options: uri (required), httpMethod, credentials, requestTemplates, templateSelectionExpression,
    passthroughBehavior, requestParameters (static headers), integrationResponses, endpointUrl, connectTimeoutMs."""

    type_name = "aws"

    def __init__(self, spec: IntegrationSpec, function_name: str, options: AwsServiceOptions, base: URL,
                 caller: AwsCaller, protocol: str, target_prefix: str | None, json_version: str,
                 api_version: str | None) -> None:
        super().__init__(spec, function_name)
        self.options = options
        self.base = base
        self.caller = caller
        self.protocol = protocol
        self.target_prefix = target_prefix
        self.json_version = json_version
        self.api_version = api_version
        self.what = f"{options.service}:{options.action or options.path} ({spec.key})"
        self.mapping = NonProxyMapping(options.mapping, self.what)

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> AwsServiceIntegration:
        options = spec.options
        assert isinstance(options, AwsServiceOptions)
        session = botocore_session(spec.key)
        try:
            model = session.get_service_model(PREFIX_SERVICES.get(options.service, options.service))
            service_id, prefix, signing = model.service_id, model.endpoint_prefix, model.signing_name
            protocol = model.metadata.get("protocol", "query")
            target, json_version = model.metadata.get("targetPrefix"), model.metadata.get("jsonVersion", "1.0")
            api_version = model.api_version
        except Exception:     # a service botocore does not know: signed with its prefix, sent as given
            service_id = prefix = signing = options.service
            protocol, target, json_version, api_version = "query", None, "1.0", None
        base, local = endpoint_for(service_id, prefix, options.region, options.endpoint_url, environ())
        credentials = credentials_for(session, options.credentials, local, spec.key, options.region, environ())
        caller = AwsCaller(resources, signing, options.region, credentials, options.connect_timeout_ms / 1000,
                           spec.timeout_ms / 1000)
        return cls(spec, function_name, options, base, caller, protocol, target, json_version, api_version)

    def request(self, event: dict[str, Any]) -> tuple[str, URL, bytes, dict[str, str]]:
        body = self.mapping.request_body(event)
        headers = dict(self.options.request_headers)
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        url = self.base
        if self.options.action is not None:
            json_body = body.lstrip().startswith("{") and self.protocol == "json" and self.target_prefix
            if content_type is None:
                content_type = f"application/x-amz-json-{self.json_version}" if json_body else FORM
                headers["Content-Type"] = content_type
            if content_type.startswith("application/x-amz-json") and self.target_prefix:
                headers["X-Amz-Target"] = f"{self.target_prefix}.{self.options.action}"
            else:
                query = {"Action": self.options.action, **({"Version": self.api_version} if self.api_version else {})}
                url = url.with_path(url.raw_path.rstrip("/") + "/", encoded=True).with_query(query)
        else:
            path = self.options.path or ""
            url = url.with_path(url.raw_path.rstrip("/") + "/" + path.lstrip("/"), encoded=True)
            if content_type is None and body:
                headers["Content-Type"] = "application/json"
        return self.options.http_method, url, body.encode(), headers

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        method, url, body, headers = self.request(event)
        answer, error = await self.caller.call(method, url, body, headers, self.what)
        return self.respond(event, answer, error)

    def respond(self, event: dict[str, Any], answer: HttpAnswer, error: Any) -> object:
        """The integration response matching the service's status, its template applied; a service error
        that no response names fails the call."""
        chosen = self.mapping.response_for(answer.status)
        if chosen is None:
            if error is not None:
                raise fail(self.what, answer, error)
            if answer.status >= 400:
                raise fail(self.what, answer, service_error(answer))
            return passed_through(answer.status, answer.headers, answer.body)
        return self.mapping.respond(event, chosen, answer.status, answer.headers, answer.body)
