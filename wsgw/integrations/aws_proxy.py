"""`AWS_PROXY` with `integrationSubtype` (HTTP APIs' first-class integrations, also on WebSocket routes): the
subtype's `requestParameters` are mapped from the request (wsgw.aws.parameter_mapping), turned into the
operation's input (wsgw.aws.subtypes) and serialised by botocore's own serializer for the service's protocol,
then signed and sent on the node's pooled session (wsgw.integrations.aws_client).

The service's answer is the route's answer (status and body, as AWS passes it through); a service error is
logged with its code and answered with AWS's error frame (WebSocket) or a 500 (REST).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from yarl import URL

from wsgw.aws.lambda_context import LambdaContext
from wsgw.aws.subtypes import SUBTYPES, Subtype, SubtypeError
from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.config.service_integrations import AwsProxyOptions
from wsgw.integrations.aws_client import AwsCaller, botocore_session, credentials_for, endpoint_for, environ, fail
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.records import mapping_source


class AwsProxyIntegration(Integration):
    """Options: integrationSubtype, requestParameters (required), credentials, region, endpointUrl,
    connectTimeoutMs."""

    type_name = "aws_proxy"

    def __init__(self, spec: IntegrationSpec, function_name: str, options: AwsProxyOptions, subtype: Subtype,
                 operation: Any, serializer: Any, base: URL, caller: AwsCaller) -> None:
        super().__init__(spec, function_name)
        self.options = options
        self.subtype = subtype
        self.operation = operation
        self.serializer = serializer
        self.base = base
        self.caller = caller
        self.what = f"{subtype.name} ({spec.key})"

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> AwsProxyIntegration:
        options = spec.options
        assert isinstance(options, AwsProxyOptions)
        session = botocore_session(spec.key)
        from botocore.serialize import create_serializer

        subtype = SUBTYPES[options.subtype]
        model = session.get_service_model(subtype.service)
        operation = model.operation_model(subtype.operation)
        base, local = endpoint_for(model.service_id, model.endpoint_prefix, options.region, options.endpoint_url,
                                   environ())
        credentials = credentials_for(session, options.credentials, local, spec.key, options.region, environ())
        caller = AwsCaller(resources, model.signing_name, options.region, credentials,
                           options.connect_timeout_ms / 1000, spec.timeout_ms / 1000)
        serializer = create_serializer(model.metadata["protocol"], include_validation=True)
        return cls(spec, function_name, options, subtype, operation, serializer, base, caller)

    def request(self, event: dict[str, Any]) -> tuple[str, URL, bytes, dict[str, str]]:
        """The HTTP request of this event: parameters mapped, converted, serialised for the protocol."""
        source = mapping_source(event)
        values = {name: value.raw(source) for name, value in self.options.parameters.items()}
        try:
            params = self.subtype.build(values)
            serialized = self.serializer.serialize_to_request(params, self.operation)
        except SubtypeError as exc:
            raise IntegrationFailed(f"{self.what}: requestParameters.{exc}") from None
        except Exception as exc:    # botocore's ParamValidationError: a value of the wrong shape
            raise IntegrationFailed(f"{self.what}: the mapped parameters are not a valid "
                                    f"{self.subtype.operation} request: {exc}") from None
        path = self.base.raw_path.rstrip("/") + serialized["url_path"]
        url = self.base.with_path(path, encoded=True)
        query = serialized.get("query_string")
        if query:
            url = url.with_query(urlencode(query, doseq=True) if isinstance(query, dict) else query)
        body = serialized.get("body") or b""
        if isinstance(body, dict):
            body = urlencode(body, doseq=True)
        if isinstance(body, str):
            body = body.encode()
        headers = {str(k): str(v) for k, v in serialized.get("headers", {}).items()}
        if body and "Content-Type" not in headers and self.operation.metadata["protocol"] in ("query", "ec2"):
            headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
        return serialized["method"], url, body, headers

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        method, url, body, headers = self.request(event)
        answer, error = await self.caller.call(method, url, body, headers, self.what)
        if error is not None:
            raise fail(self.what, answer, error)
        if self.subtype.name == "EventBridge-PutEvents":
            _check_put_events(self.what, answer.body)
        content_type = answer.headers.get("Content-Type")
        return {"statusCode": answer.status, "body": answer.body.decode("utf-8", "replace") or None,
                "headers": {"content-type": content_type} if content_type else {}}


def _check_put_events(what: str, body: bytes) -> None:
    """PutEvents answers 200 even when its entry failed (FailedEntryCount): nothing was queued then."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if isinstance(doc, dict) and doc.get("FailedEntryCount"):
        entry = (doc.get("Entries") or [{}])[0]
        raise IntegrationFailed(f"{what} failed: entry refused, {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
