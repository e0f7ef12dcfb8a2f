"""IAM authorization (SigV4, service `execute-api`) of management calls and `authorizationType: AWS_IAM` routes.

The verification itself is `wsgw.aws.sigv4` (botocore's canonicalisation, constant-time compare, API Gateway's
403 error types); this module holds the accepted credentials, read once when the node is built (inline, from
files or from the environment), and answers for a whole request. botocore comes with the `aws` extra: asking
for IAM without it is a config error that names the extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from wsgw.config import ApiConfig
from wsgw.config.access import ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY, SecretUnavailable
from wsgw.errors import ConfigError, ConfigProblem
from wsgw.request import HttpRequest

if TYPE_CHECKING:
    from wsgw.aws.sigv4 import SignedCaller, SigningKey


class IamVerifier:
    """Checks a request's SigV4 signature against the configured credentials, in the API's region."""

    def __init__(self, keys: Mapping[str, SigningKey], region: str) -> None:
        from wsgw.aws import sigv4

        self._verify = sigv4.verify
        self.keys = dict(keys)
        self.region = region

    def verify(self, request: HttpRequest) -> SignedCaller:
        """The signer, or wsgw.aws.sigv4.SignatureError (its error_type and message are AWS's 403)."""
        return self._verify(request.method, request.raw_path, request.query_string, request.headers,
                            request.body, self.keys, self.region)


def build_iam_verifier(api: ApiConfig, environ: Mapping[str, str]) -> IamVerifier | None:
    """The verifier when the API uses IAM anywhere (management.auth: iam, or an AWS_IAM route), else None."""
    uses_iam = api.management.auth == "iam" or any(
        r.authorization_type == "AWS_IAM" for r in api.routes.values()) or any(
        r.authorization_type == "AWS_IAM" for r in (api.http.routes if api.http else ()))
    if not uses_iam:
        return None
    try:
        from wsgw.aws.sigv4 import SigningKey
    except ImportError:
        raise ConfigError.single("management.auth", "IAM (SigV4) verification needs botocore: "
                                 "pip install 'wsgw[aws]'") from None
    problems: list[ConfigProblem] = []
    keys: dict[str, SigningKey] = {}
    credentials = api.management.credentials
    if not credentials:       # AWS_IAM routes without management.auth: iam read the same variables
        from wsgw.config.access import CredentialSpec, Secret
        credentials = (CredentialSpec(Secret("management.credentials", env=ENV_ACCESS_KEY_ID),
                                      Secret("management.credentials", env=ENV_SECRET_ACCESS_KEY)),)
    for spec in credentials:
        try:
            key_id = spec.access_key_id.resolve(environ)
            secret = spec.secret_access_key.resolve(environ)
        except SecretUnavailable as exc:
            problems.append(ConfigProblem(spec.access_key_id.key, str(exc)))
            continue
        keys[key_id] = SigningKey(key_id, secret)
    if problems:
        raise ConfigError(problems)
    return IamVerifier(keys, api.region)


__all__ = ["IamVerifier", "build_iam_verifier"]
