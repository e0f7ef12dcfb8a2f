"""What the AWS service integrations (`AWS`, `AWS_PROXY`) share: the endpoint of a service (`endpointUrl`,
`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, else AWS's), credentials (a role, keys, a profile or the
usual sources), SigV4 signing with botocore, the node's pooled aiohttp session, reading a service error, and
retrying throttling errors with full-jitter backoff while the integration's timeout allows.

botocore is needed (`pip install 'wsgw[aws]'`); it is imported only when a route uses these types.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from wsgw.config.service_integrations import AwsCredentialsSetting
from wsgw.errors import ConfigError
from wsgw.integrations.base import IntegrationFailed, Resources
from wsgw.integrations.http_client import HttpAnswer, send, shared_session

log = logging.getLogger("wsgw.integrations.aws")

# botocore's throttling codes (botocore/retries/standard.py) plus the HTTP statuses AWS throttles with.
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown",
    "PriorRequestNotComplete", "EC2ThrottledException", "KMSThrottlingException",
})
BACKOFF_BASE_S = 0.025
BACKOFF_CAP_S = 1.0
# The endpoint prefix of an `AWS` integration's URI -> botocore's service name (its protocol and signing name).
PREFIX_SERVICES = {"states": "stepfunctions", "email": "ses", "monitoring": "cloudwatch"}


def botocore_session(key: str) -> Any:
    try:
        import botocore.session
    except ImportError:
        raise ConfigError.single(f"{key}.type", "AWS service integrations need botocore: pip install 'wsgw[aws]'") \
            from None
    return botocore.session.get_session()


def endpoint_for(service_id: str, endpoint_prefix: str, region: str, given: str | None,
                 environ: Mapping[str, str]) -> tuple[URL, bool]:
    """The service's base URL and whether it was given (a local service accepts any signature)."""
    if given:
        return URL(given), True
    own = environ.get("AWS_ENDPOINT_URL_" + service_id.upper().replace(" ", "_").replace("-", "_"))
    shared = environ.get("AWS_ENDPOINT_URL")
    if own or shared:
        return URL(own or shared or ""), True
    return URL(f"https://{endpoint_prefix}.{region}.amazonaws.com"), False


def credentials_for(session: Any, setting: AwsCredentialsSetting | None, local: bool, key: str,
                    region: str, environ: Mapping[str, str]) -> Any:
    """botocore credentials (refreshable for a role); a local endpoint without credentials gets placeholders."""
    from botocore.credentials import Credentials

    if setting is not None and setting.access_key_id and setting.secret_access_key:
        base = Credentials(setting.access_key_id, setting.secret_access_key, setting.session_token)
    elif setting is not None and setting.profile:
        import botocore.session

        base = botocore.session.Session(profile=setting.profile).get_credentials()
    else:
        base = session.get_credentials()
    if base is None or base.access_key == "wsgw-local":
        if not local:
            raise ConfigError.single(f"{key}.credentials", "no AWS credentials found to sign requests "
                                     "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or 'credentials')")
        base = Credentials("wsgw-local", "wsgw-local")
    if setting is None or not setting.role_arn:
        return base
    from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

    sts_endpoint, _ = endpoint_for("STS", "sts", region, None, environ)

    def client_creator(service: str, **kwargs: Any) -> Any:
        return session.create_client(service, region_name=region, endpoint_url=str(sts_endpoint), **kwargs)

    fetcher = AssumeRoleCredentialFetcher(client_creator, base, setting.role_arn,
                                          extra_args={"RoleSessionName": "wsgw"})
    return DeferredRefreshableCredentials(fetcher.fetch_credentials, "assume-role")


@dataclass(slots=True)
class ServiceError:
    code: str
    message: str


def service_error(answer: HttpAnswer) -> ServiceError:
    """The error code and message of a failed AWS call, whatever its protocol (JSON, XML, rest-json)."""
    import re

    import orjson

    header = answer.headers.get("x-amzn-ErrorType", "")
    text = answer.body.decode("utf-8", "replace")
    code, message = header.split(":", 1)[0], ""
    try:
        doc = orjson.loads(answer.body) if answer.body.strip().startswith(b"{") else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        code = code or str(doc.get("__type") or doc.get("code") or doc.get("Code") or "")
        message = str(doc.get("message") or doc.get("Message") or "")
    else:
        found = re.search(r"<Code>([^<]+)</Code>", text)
        code = code or (found.group(1) if found else "")
        found = re.search(r"<Message>([^<]*)</Message>", text)
        message = found.group(1) if found else text[:200]
    code = code.rsplit("#", 1)[-1].rsplit(".", 1)[-1] if code else f"HTTP{answer.status}"
    return ServiceError(code, message)


def throttled(answer: HttpAnswer, error: ServiceError) -> bool:
    return answer.status == 429 or error.code in THROTTLING_CODES


class AwsCaller:
    """Signs and sends one service's requests; retries throttling inside the integration's timeout."""

    def __init__(self, resources: Resources, signing_name: str, region: str, credentials: Any,
                 connect_timeout_s: float, timeout_s: float) -> None:
        self.resources = resources
        self.signing_name = signing_name
        self.region = region
        self.credentials = credentials
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s

    async def _frozen(self) -> Any:
        refresh_needed = getattr(self.credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():   # a refresh does network I/O: not on the loop
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.resources.executor, self.credentials.get_frozen_credentials)
        return self.credentials.get_frozen_credentials()

    async def _signed(self, method: str, url: URL, body: bytes, headers: Mapping[str, str]) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=str(url), data=body, headers=dict(headers))
        SigV4Auth(await self._frozen(), self.signing_name, self.region).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}

    async def call(self, method: str, url: URL, body: bytes, headers: Mapping[str, str],
                   what: str) -> tuple[HttpAnswer, ServiceError | None]:
        """The service's answer and, when it failed, its error; throttling is retried until the timeout nears."""
        started = time.monotonic()
        attempt = 0
        while True:
            signed = await self._signed(method, url, body, headers)
            remaining = self.timeout_s - (time.monotonic() - started)
            answer = await send(shared_session(self.resources), method, url, body, signed,
                                min(self.connect_timeout_s, max(remaining, 0.001)), max(remaining, 0.001))
            if answer.status < 300:
                return answer, None
            error = service_error(answer)
            if not throttled(answer, error):
                return answer, error
            delay = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt))
            attempt += 1
            if time.monotonic() - started + delay >= self.timeout_s * 0.9:
                log.warning("%s: throttled (%s) %d time(s); giving up before the integration timeout",
                            what, error.code, attempt)
                return answer, error
            await asyncio.sleep(delay)


def fail(what: str, answer: HttpAnswer, error: ServiceError) -> IntegrationFailed:
    """The service refused: logged with its error (code, message), answered with AWS's error frame."""
    return IntegrationFailed(f"{what} failed: status {answer.status}, {error.code}: {error.message[:300]}")


def environ() -> Mapping[str, str]:
    """The process's environment, read (never written) when integrations are built."""
    return os.environ
