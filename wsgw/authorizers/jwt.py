"""`jwt`: the built-in JWT authorizer (AWS HTTP APIs have one; AWS WebSocket APIs do not).

Checks as AWS's HTTP API JWT authorizer does: the signature with a key from the issuer's JWKS (matched by
``kid``), ``iss``, ``aud`` (or ``client_id`` when there is no ``aud``), ``exp``, ``nbf``, ``iat``, and
when ``scopes`` is set, that the token's ``scope``/``scp`` holds at least one of them. Only asymmetric
algorithms from the allowlist are accepted: never ``none``, never an HMAC (so a public key can't be used
as an HMAC secret). A bad or missing token → 401; a valid one without a required scope → 403; no keys
available → 500.

The token is taken from the first identity source that has one: ``Authorization: Bearer …``, a query
parameter, or ``Sec-WebSocket-Protocol`` (browsers cannot set headers). In the last case the handshake
answers with the client's other, real subprotocol — never the token.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Self

import jwt

from wsgw.authorizers.base import Authorizer, AuthOutcome, status_message
from wsgw.authorizers.fronts import AuthRequest
from wsgw.authorizers.identity import IdentitySource
from wsgw.authorizers.jwks import JwksStore, JwksUnavailable
from wsgw.config import ApiConfig, AuthorizerSpec, JwtAuthorizerOptions
from wsgw.config.authorizers import DEFAULT_IDENTITY_SOURCE, is_url
from wsgw.errors import ConfigError
from wsgw.integrations import Resources

log = logging.getLogger("wsgw.authorizers")

SUBPROTOCOL_HEADER = "sec-websocket-protocol"
MAX_TOKEN_BYTES = 16 * 1024
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_BEARER = re.compile(r"^bearer\s+", re.IGNORECASE)


class JwtAuthorizer(Authorizer):
    """Verifies a JWT locally; claims reach handlers as requestContext.authorizer.jwt.claims."""

    type_name = "jwt"

    def __init__(self, spec: AuthorizerSpec, sources: tuple[IdentitySource, ...], issuer: str,
                 audience: frozenset[str], algorithms: tuple[str, ...], leeway_s: float,
                 scopes: frozenset[str] | None, jwks: JwksStore) -> None:
        super().__init__(spec)
        self.sources = sources
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self.leeway_s = leeway_s
        self.scopes = scopes
        self.jwks = jwks

    @classmethod
    def from_spec(cls, spec: AuthorizerSpec, api: ApiConfig, resources: Resources) -> JwtAuthorizer:
        options = spec.options
        assert isinstance(options, JwtAuthorizerOptions)
        return cls.from_options(spec, options, api)

    @classmethod
    def from_options(cls, spec: AuthorizerSpec, options: JwtAuthorizerOptions, api: ApiConfig) -> Self:
        """Built from JWT options (also a Cognito authorizer's, whose pool gives the issuer and key set)."""
        jwks_uri = options.jwks_uri
        if jwks_uri is not None and not is_url(jwks_uri) and not (api.base_dir / jwks_uri).is_file():
            raise ConfigError.single(f"authorizers.{spec.name}.jwksUri",
                                     f"file '{jwks_uri}' not found (relative paths start at {api.base_dir})")
        sources = tuple(s for s in (IdentitySource.parse(t) for t in spec.identity_sources
                                    or (DEFAULT_IDENTITY_SOURCE,)) if s is not None)
        jwks = JwksStore(jwks_uri, options.issuer, options.jwks_timeout_ms / 1000, options.jwks_refresh_seconds,
                         options.jwks_cache_seconds, api.base_dir)
        return cls(spec, sources, options.issuer, options.audience, options.algorithms, options.leeway_seconds,
                   options.scopes, jwks)

    async def close(self) -> None:
        await self.jwks.close()

    # ----- deciding --------------------------------------------------------------------------------

    async def authorize(self, request: AuthRequest) -> AuthOutcome:
        started = time.monotonic()
        found = self._token(request)
        if found is None:
            return self._refuse(401, request, "no token in " + ", ".join(s.text for s in self.sources))
        token, subprotocol = found
        consumed = (token,) if token in request.subprotocols else ()
        if len(token) > MAX_TOKEN_BYTES:
            return self._refuse(401, request, f"token longer than {MAX_TOKEN_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            return self._refuse(401, request, f"malformed token ({exc})")
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.algorithms:
            return self._refuse(401, request, f"algorithm {alg!r} is not allowed")
        if kid is not None and not isinstance(kid, str):
            return self._refuse(401, request, "kid is not a string")
        try:
            key = await self.jwks.key_for(kid, alg)
        except JwksUnavailable as exc:
            return self._refuse(500, request, f"no signing keys: {exc}")
        if key is None:
            return self._refuse(401, request, f"no key with kid {kid!r} for {alg} in the issuer's JWKS")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[alg], issuer=self.issuer, leeway=self.leeway_s,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.InvalidTokenError as exc:
            return self._refuse(401, request, f"{type(exc).__name__}: {exc}")
        problem = self.claims_problem(claims)
        if problem is not None:
            return self._refuse(401, request, problem)
        scopes = self.scopes_of(claims)
        required = request.required_scopes if request.required_scopes is not None else self.scopes
        if required is not None and not set(required).intersection(scopes or ()):
            return self._refuse(403, request, "the token carries none of the required scopes")
        jwt_context: dict[str, object] = {"claims": claims, "scopes": scopes}
        context = request.jwt_context(claims.get("sub"), jwt_context, int((time.monotonic() - started) * 1000))
        return AuthOutcome(200, context, subprotocol, consumed=consumed)

    def _token(self, request: AuthRequest) -> tuple[str, str | None] | None:
        """(token, the subprotocol to answer) from the first identity source that holds a token."""
        for source in self.sources:
            if source.is_header and source.name.lower() == SUBPROTOCOL_HEADER:
                offered = request.subprotocols or request.headers.tokens(SUBPROTOCOL_HEADER)
                token = next((p for p in offered if _JWT_SHAPE.match(p)), None)
                if token is not None:
                    real = next((p for p in offered if p != token), None)
                    return token, real
                continue
            value = source.resolve(request)
            if value is None:
                continue
            if source.is_header:
                value = _BEARER.sub("", value).strip()
            if value:
                return value, None
        return None

    def claims_problem(self, claims: dict[str, Any]) -> str | None:
        """Why verified claims are still refused (401), or None; here: `aud` (or `client_id`) not configured."""
        aud = claims.get("aud", claims.get("client_id"))
        given = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if any(isinstance(a, str) and a in self.audience for a in given):
            return None
        return "aud/client_id is not one of the configured audiences"

    def scopes_of(self, claims: dict[str, Any]) -> list[str] | None:
        """The scopes a route's authorizationScopes are matched against."""
        return token_scopes(claims)

    def _refuse(self, status: int, request: AuthRequest, why: str) -> AuthOutcome:
        """Log why (never the token), tell the client only the status."""
        log.warning("jwt authorizer %s refused (requestId %s, %s): %s", self.spec.name, request.request_id,
                    status, why)
        return AuthOutcome(status, message=status_message(status))


def token_scopes(claims: dict[str, Any]) -> list[str] | None:
    """The token's scopes from `scope` (space-separated, RFC 8693) or `scp` (a list or a string)."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [s for s in raw if isinstance(s, str)]
    return None


__all__ = ["JwtAuthorizer", "token_scopes"]
