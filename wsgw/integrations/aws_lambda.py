"""`aws_lambda`: the Lambda Invoke API (RequestResponse) with the event as payload, so one config drives
real AWS Lambda or any Invoke-compatible runtime (`endpointUrl`).

Requests are signed with botocore's SigV4 signer and sent on the node's pooled aiohttp session rather than
through boto3's blocking `invoke` in the thread pool: a hung function would otherwise hold a pool thread for
up to 29 s, and enough of them would starve every sync Python handler of the node. botocore is needed
(`pip install 'wsgw[aws]'`); it is imported only when a route uses this type.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import orjson
from yarl import URL

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, AwsLambdaOptions, IntegrationSpec
from wsgw.errors import ConfigError
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.http_client import describe, send, shared_session


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
        options = spec.options
        assert isinstance(options, AwsLambdaOptions)
        try:
            import botocore.session
        except ImportError:
            raise ConfigError.single(f"{key}.type", "aws_lambda needs botocore: pip install 'wsgw[aws]'") from None
        base = URL(options.endpoint_url)
        path = f"{base.raw_path.rstrip('/')}/2015-03-31/functions/{quote(options.function_arn, safe='')}/invocations"
        url = base.with_path(path, encoded=True)
        if options.qualifier is not None:
            url = url.with_query({"Qualifier": options.qualifier})
        credentials = botocore.session.get_session().get_credentials()
        # The placeholder keys in-process handlers get on a bare machine (wsgw.integrations.environment)
        # cannot sign for real AWS either; `run` and `check` refuse alike.
        if credentials is None or credentials.access_key == "wsgw-local":
            if not options.endpoint_given:
                raise ConfigError.single(f"{key}.functionArn", "no AWS credentials found to sign Invoke requests "
                                         "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)")
            from botocore.credentials import Credentials

            credentials = Credentials("wsgw-local", "wsgw-local")   # a local runtime accepts any signature
        return cls(spec, function_name, resources, url, options.region, credentials,
                   options.connect_timeout_ms / 1000)

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
            failed = IntegrationFailed(f"function {self.url.path} raised ({function_error}): {describe(answer, 1000)}")
            failed.function_message = _error_message(answer.body)
            raise failed
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


def _error_message(body: bytes) -> str | None:
    """`errorMessage` of a function error's payload (`{"errorMessage", "errorType"}`), if there is one."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    message = payload.get("errorMessage") if isinstance(payload, dict) else None
    return message if isinstance(message, str) else None
