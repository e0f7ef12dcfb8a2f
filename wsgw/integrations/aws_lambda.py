"""`aws_lambda`: the Lambda Invoke API (RequestResponse) with the event as payload, so one config drives
real AWS Lambda or any Invoke-compatible runtime (`endpointUrl`).

Requests are signed with botocore's SigV4 signer and sent on the node's pooled aiohttp session rather than
through boto3's blocking `invoke` in the thread pool: a hung function would otherwise hold a pool thread for
up to 29 s, and enough of them would starve every sync Python handler of the node. botocore is needed
(`pip install 'wsgw[aws]'`); it is imported only when a route uses this type.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import quote

import orjson
from yarl import URL

from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.errors import ConfigError
from wsgw.events import LambdaContext
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.http_client import (
    connect_timeout,
    describe,
    send,
    shared_session,
    substitute,
)

# botocore's Lambda model (2015-03-31) pattern for NamespacedFunctionName, with the region captured.
REGION_PART = r"(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d"
FUNCTION = re.compile(
    rf"^(arn:(aws[a-zA-Z-]*)?:lambda:)?((?P<region>{REGION_PART}):)?(\d{{12}}:)?(function:)?"
    r"[a-zA-Z0-9_.-]{1,140}(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9_-]+))?$"
)
REGION = re.compile(rf"^{REGION_PART}$")


class AwsLambdaIntegration(Integration):
    """Options: functionArn (name, partial or full ARN; required), endpointUrl, region, qualifier,
    connectTimeoutMs."""

    type_name = "aws_lambda"

    def __init__(self, spec: IntegrationSpec, function_name: str, resources: Resources, url: URL, region: str,
                 credentials: Any, connect_timeout_s: float) -> None:
        super().__init__(spec, function_name)
        self.resources = resources
        self.url = url
        self.region = region
        self.credentials = credentials
        self.connect_timeout_s = connect_timeout_s

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> AwsLambdaIntegration:
        key = spec.key
        try:
            import botocore.session
        except ImportError:
            raise ConfigError.single(f"{key}.type", "aws_lambda needs botocore: pip install 'wsgw[aws]'") from None
        arn = spec.options.get("functionArn")
        if not isinstance(arn, str) or not arn:
            raise ConfigError.single(f"{key}.functionArn", "missing: give a function name or ARN "
                                     "(e.g. arn:aws:lambda:us-east-1:123456789012:function:chat)")
        arn = substitute(arn, api.stage_variables, f"{key}.functionArn")
        match = FUNCTION.match(arn)
        if match is None:
            raise ConfigError.single(f"{key}.functionArn", f"'{arn}' is not a Lambda function name or ARN")
        region = spec.options.get("region") or match.group("region") or api.region
        if not isinstance(region, str) or not REGION.match(region):
            raise ConfigError.single(f"{key}.region", f"'{region}' is not an AWS region (e.g. us-east-1)")
        endpoint = spec.options.get("endpointUrl", f"https://lambda.{region}.amazonaws.com")
        if not isinstance(endpoint, str):
            raise ConfigError.single(f"{key}.endpointUrl", "must be a URL such as http://127.0.0.1:9001")
        endpoint = substitute(endpoint, api.stage_variables, f"{key}.endpointUrl")
        base = URL(endpoint)
        if base.scheme not in ("http", "https") or not base.host:
            raise ConfigError.single(f"{key}.endpointUrl", f"'{endpoint}' must be an absolute http(s) URL")
        path = f"{base.raw_path.rstrip('/')}/2015-03-31/functions/{quote(arn, safe='')}/invocations"
        url = base.with_path(path, encoded=True)
        qualifier = spec.options.get("qualifier")
        if qualifier is not None:
            if not isinstance(qualifier, str) or not re.fullmatch(r"\$LATEST|[a-zA-Z0-9_-]{1,128}", qualifier):
                raise ConfigError.single(f"{key}.qualifier", "must be a version number, alias or $LATEST")
            url = url.with_query({"Qualifier": qualifier})
        credentials = botocore.session.get_session().get_credentials()
        # The gateway installs placeholder keys for in-process handlers on a bare machine: they cannot sign
        # for real AWS either, so `run` refuses exactly what `check` does.
        if credentials is None or credentials.access_key == "wsgw-local":
            if "endpointUrl" not in spec.options:
                raise ConfigError.single(f"{key}.functionArn", "no AWS credentials found to sign Invoke requests "
                                         "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)")
            from botocore.credentials import Credentials

            credentials = Credentials("wsgw-local", "wsgw-local")   # a local runtime accepts any signature
        return cls(spec, function_name, resources, url, region, credentials, connect_timeout(spec))

    async def _frozen_credentials(self) -> Any:
        refresh_needed = getattr(self.credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():   # a refresh may do network I/O: not on the loop
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.resources.executor, self.credentials.get_frozen_credentials)
        return self.credentials.get_frozen_credentials()

    async def _signed_headers(self, payload: bytes) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method="POST", url=str(self.url), data=payload,
                             headers={"Content-Type": "application/json", "X-Amz-Invocation-Type": "RequestResponse"})
        SigV4Auth(await self._frozen_credentials(), "lambda", self.region).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        payload = orjson.dumps(event)
        headers = await self._signed_headers(payload)
        answer = await send(shared_session(self.resources), "POST", self.url, payload, headers,
                            self.connect_timeout_s, self.spec.timeout_ms / 1000)
        function_error = answer.headers.get("X-Amz-Function-Error")
        if function_error:
            raise IntegrationFailed(f"function {self.url.path} raised ({function_error}): {describe(answer, 1000)}")
        if answer.status != 200:
            kind = answer.headers.get("x-amzn-ErrorType", "")
            raise IntegrationFailed(f"Invoke {self.url} failed {kind}: {describe(answer)}")
        if not answer.body.strip():
            return None
        try:
            return orjson.loads(answer.body)
        except orjson.JSONDecodeError as exc:
            raise IntegrationFailed(f"Invoke {self.url} returned a payload that is not JSON: "
                                    f"{describe(answer)}") from exc
