"""`token`: an AWS TOKEN authorizer, i.e. a Lambda that is given only the caller's token.

The function receives AWS's TOKEN event, `{"type": "TOKEN", "authorizationToken": <the header's value>,
"methodArn": <the route's ARN>}` (AWS developer guide, "Input to an API Gateway Lambda authorizer"), and
answers an IAM policy (`{principalId, policyDocument, context}`), evaluated exactly as a REQUEST authorizer's
(`request.py`: the same statuses, the same shared calls). The token comes from one header
(`identitySource: $request.header.Authorization`, AWS's `method.request.header.Authorization` too); a missing
token, or one that does not match `identityValidationExpression` as a whole, is 401 without calling the
function. Decisions are cached by the token for `resultTtlInSeconds`.

AWS has TOKEN authorizers on REST APIs; wsgw also runs them on `$connect`, so Lambdas written for TOKEN
events work on WebSocket APIs too.
"""

from __future__ import annotations

import logging

from wsgw.authorizers.fronts import AuthRequest
from wsgw.authorizers.request import RequestAuthorizer
from wsgw.aws.policy import AuthorizerDecision, DecisionCache, parse_authorizer_response
from wsgw.config import ApiConfig, AuthorizerSpec, TokenAuthorizerOptions
from wsgw.integrations import Integration, Resources, build_integration

log = logging.getLogger("wsgw.authorizers")


def token_event(token: str, method_arn: str) -> dict[str, object]:
    """AWS's TOKEN authorizer input, field for field (tests/fixtures/aws/token_authorizer_event.json)."""
    return {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}


class TokenAuthorizer(RequestAuthorizer):
    """A RequestAuthorizer whose function sees the TOKEN event; identity is one header, checked first."""

    type_name = "token"

    def __init__(self, spec: AuthorizerSpec, integration: Integration, region: str, account_id: str,
                 options: TokenAuthorizerOptions) -> None:
        super().__init__(spec, integration, region, account_id, options.cache_max_entries)
        self.header = options.header
        self.validation = options.validation
        # keyed by the token (the one identity source), whatever identitySource spelling was configured
        self.cache = DecisionCache(spec.ttl_seconds, options.cache_max_entries) if spec.ttl_seconds > 0 else None

    @classmethod
    def from_spec(cls, spec: AuthorizerSpec, api: ApiConfig, resources: Resources) -> TokenAuthorizer:
        options = spec.options
        assert isinstance(options, TokenAuthorizerOptions) and spec.integration is not None
        integration = build_integration(spec.integration, api, resources, f"wsgw-{api.stage}-authorizer-{spec.name}")
        return cls(spec, integration, api.region, api.account_id, options)

    def identity(self, request: AuthRequest) -> list[str] | None:
        token = request.headers.last(self.header)
        if not token:
            log.warning("token authorizer %s: no %s header (requestId %s): 401", self.spec.name, self.header,
                        request.request_id)
            return None
        if self.validation is not None and self.validation.fullmatch(token) is None:
            log.warning("token authorizer %s: the token fails identityValidationExpression (requestId %s): 401",
                        self.spec.name, request.request_id)
            return None
        return [token]

    def event(self, request: AuthRequest, identity: list[str]) -> dict[str, object]:
        return token_event(identity[0], request.method_arn)

    def read(self, request: AuthRequest, raw: object) -> AuthorizerDecision:
        """A policy, on either front (a TOKEN authorizer has no simple `isAuthorized` answer)."""
        return parse_authorizer_response(raw)


__all__ = ["TokenAuthorizer", "token_event"]
