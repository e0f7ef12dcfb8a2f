"""`cognito`: tokens of one Amazon Cognito user pool, as API Gateway's Cognito and JWT authorizers check them.

Signature, algorithm, `exp`/`nbf`/`iat` and `iss` exactly as the JWT authorizer (`jwt.py`; the key set is the
pool's `/.well-known/jwks.json` unless `jwksUri` says otherwise), then what Cognito tokens mean:

- `iss` must be the pool (`issuer`, or the one `userPoolArn` names);
- `token_use` must be one of `tokenUse` (`id`, `access`; anything else, e.g. `bogus`, is refused);
- the app client must be one of `appClientIds`: `aud` of an id token, `client_id` of an access token;
- the token's `scope` values and `cognito:groups` are the scopes a route's `authorizationScopes` ask for
  (at least one must be present, else 403).

Claims reach handlers where the JWT authorizer puts them: `requestContext.authorizer.jwt.claims` on the REST
front (HTTP API payload 2.0, as AWS's JWT authorizer with a Cognito issuer) and on `$connect` events.
"""

from __future__ import annotations

from typing import Any

from wsgw.authorizers.jwt import JwtAuthorizer, token_scopes
from wsgw.config import ApiConfig, AuthorizerSpec, CognitoAuthorizerOptions
from wsgw.integrations import Resources

GROUPS_CLAIM = "cognito:groups"


class CognitoAuthorizer(JwtAuthorizer):
    """A JwtAuthorizer for one user pool: the pool's key set, token_use and app client checked too."""

    type_name = "cognito"
    token_use: frozenset[str] = frozenset({"id", "access"})

    @classmethod
    def from_spec(cls, spec: AuthorizerSpec, api: ApiConfig, resources: Resources) -> CognitoAuthorizer:
        options = spec.options
        assert isinstance(options, CognitoAuthorizerOptions)
        authorizer = cls.from_options(spec, options.jwt, api)
        authorizer.token_use = options.token_use
        return authorizer

    def claims_problem(self, claims: dict[str, Any]) -> str | None:
        use = claims.get("token_use")
        if not isinstance(use, str) or use not in self.token_use:
            return f"token_use {use!r} is not one of {sorted(self.token_use)}"
        client = claims.get("aud") if use == "id" else claims.get("client_id")
        if not isinstance(client, str) or client not in self.audience:
            which = "aud" if use == "id" else "client_id"
            return f"{which} of this {use} token is not one of appClientIds"
        return None

    def scopes_of(self, claims: dict[str, Any]) -> list[str] | None:
        scopes = list(token_scopes(claims) or [])
        groups = claims.get(GROUPS_CLAIM)
        if isinstance(groups, list):
            scopes.extend(g for g in groups if isinstance(g, str))
        return scopes


__all__ = ["CognitoAuthorizer"]
