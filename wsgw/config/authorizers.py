"""Authorizer options: one frozen spec per type (request, token, jwt, cognito) and its parser, checked at load
(pure, no I/O).

Each type reads the options it knows; any other key is refused by name with a did-you-mean. Whether a
`jwksUri` file exists is left to the JWT authorizer when the node is built.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wsgw.errors import ConfigProblem

SUPPORTED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
DEFAULT_IDENTITY_SOURCE = "route.request.header.Authorization"
# keys every authorizer has, read by wsgw.config itself
COMMON_KEYS = frozenset({"type", "handler", "integration", "identitySource", "resultTtlInSeconds"})


@dataclass(frozen=True, slots=True)
class RequestAuthorizerOptions:
    """`request`: a Lambda authorizer (its integration is AuthorizerSpec.integration)."""

    cache_max_entries: int = 10_000


@dataclass(frozen=True, slots=True)
class JwtAuthorizerOptions:
    """`jwt`: tokens checked locally against the issuer's keys (JWKS)."""

    issuer: str
    audience: frozenset[str]
    jwks_uri: str | None                 # an http(s) URL or a file path; None: the issuer's OIDC discovery
    algorithms: tuple[str, ...]
    leeway_seconds: float
    scopes: frozenset[str] | None
    jwks_timeout_ms: float
    jwks_refresh_seconds: float
    jwks_cache_seconds: float


@dataclass(frozen=True, slots=True)
class TokenAuthorizerOptions:
    """`token`: a Lambda TOKEN authorizer (its integration is AuthorizerSpec.integration)."""

    header: str                                   # the one header the token is read from
    validation: re.Pattern[str] | None            # identityValidationExpression: a token must match it whole
    cache_max_entries: int = 10_000


@dataclass(frozen=True, slots=True)
class CognitoAuthorizerOptions:
    """`cognito`: tokens of one Cognito user pool, checked as the JWT authorizer checks, plus what Cognito
    tokens mean (`token_use`, the app client)."""

    jwt: JwtAuthorizerOptions                     # issuer = the pool; audience = appClientIds
    token_use: frozenset[str]                     # id, access


AuthorizerOptions = RequestAuthorizerOptions | JwtAuthorizerOptions | TokenAuthorizerOptions | CognitoAuthorizerOptions


class OptionReader:
    """Typed access to one authorizer's raw options; problems are collected, each naming its key."""

    def __init__(self, name: str, kind: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.kind = kind
        self.options = options
        self.problems: list[ConfigProblem] = []
        self.read: set[str] = set()

    def key(self, name: str) -> str:
        return f"authorizers.{self.name}.{name}"

    def problem(self, name: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.key(name), message))

    def raw(self, name: str) -> Any:
        self.read.add(name)
        return self.options.get(name)

    def string(self, name: str, *, required: bool = False, example: str = "") -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.problem(name, f"missing: give a string{f' such as {example}' if example else ''}")
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(name, "must be a non-empty string")
            return None
        return value.strip()

    def string_list(self, name: str, *, required: bool = False, example: str = "") -> tuple[str, ...] | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.problem(name, f"missing: give a list of strings{f' such as {example}' if example else ''}")
            return None
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
            self.problem(name, f"must be a non-empty list of strings{f' such as {example}' if example else ''}")
            return None
        return tuple(items)

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not minimum <= value <= maximum:
            self.problem(name, f"must be a number from {minimum:g} to {maximum:g}")
            return default
        return float(value)

    def unknown(self, ignored: frozenset[str] = frozenset()) -> None:
        """Refuse every key no reader asked for, with the closest known one."""
        known = self.read | ignored
        for name in self.options:
            if name not in known:
                close = difflib.get_close_matches(str(name), sorted(self.read), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.problem(str(name), f"unknown key for a '{self.kind}' authorizer{hint}")


def _request(r: OptionReader, ttl_seconds: int, identity_sources: tuple[str, ...]) -> RequestAuthorizerOptions:
    max_entries = int(r.number("resultCacheMaxEntries", 10_000, 1, 10_000_000))
    r.unknown(ignored=frozenset({"timeoutMs"}))     # the `handler:` shorthand's timeout, read with the handler
    return RequestAuthorizerOptions(max_entries)


def _jwt(r: OptionReader, ttl_seconds: int, identity_sources: tuple[str, ...]) -> JwtAuthorizerOptions | None:
    issuer = r.string("issuer", required=True, example="https://auth.example.com/")
    audience = r.string_list("audience", required=True, example="[chat]")
    jwks_uri = r.string("jwksUri")
    algorithms = r.string_list("algorithms") or SUPPORTED_ALGORITHMS
    leeway = r.number("leewaySeconds", 0, 0, 600)
    scopes = r.string_list("scopes")
    timeout_ms = r.number("jwksTimeoutMs", 2000, 50, 29_000)
    refresh_s = r.number("jwksRefreshSeconds", 30, 0, 86_400)
    max_age_s = r.number("jwksCacheSeconds", 3600, 1, 86_400)
    for alg in algorithms:
        if alg.lower() == "none":
            r.problem("algorithms", "'none' is never allowed: an unsigned token proves nothing")
        elif alg.upper().startswith("HS"):
            r.problem("algorithms", f"'{alg}' is an HMAC algorithm; a JWKS holds public keys, so only "
                      "asymmetric ones are allowed: " + ", ".join(SUPPORTED_ALGORITHMS))
        elif alg not in SUPPORTED_ALGORITHMS:
            r.problem("algorithms", f"'{alg}' is not one of: " + ", ".join(SUPPORTED_ALGORITHMS))
    if jwks_uri is None and issuer is not None and not is_url(issuer):
        r.problem("jwksUri", "missing: the issuer is not an http(s) URL, so its OIDC discovery "
                  "document cannot be found; give jwksUri (a URL or a file path)")
    if jwks_uri is not None and not is_url(jwks_uri) and "://" in jwks_uri:
        r.problem("jwksUri", "must be an https:// or http:// URL, or a file path")
    if ttl_seconds:
        r.problem("resultTtlInSeconds", "a JWT authorizer checks each token locally (its keys are "
                  "cached); remove this key or set it to 0")
    for text in identity_sources or (DEFAULT_IDENTITY_SOURCE,):
        if not text.startswith(("route.request.header.", "route.request.querystring.", "$request.header.",
                                "$request.querystring.")):
            r.problem("identitySource", f"'{text}': a JWT comes from a header or a query "
                      "parameter (e.g. route.request.header.Authorization)")
    r.unknown()
    if issuer is None or audience is None:
        return None
    return JwtAuthorizerOptions(issuer, frozenset(audience), jwks_uri, tuple(algorithms), leeway,
                                frozenset(scopes) if scopes else None, timeout_ms, refresh_s, max_age_s)


TOKEN_SOURCE = re.compile(r"^(\$request\.header\.|method\.request\.header\.|route\.request\.header\.)([^\s.]+)$")
DEFAULT_TOKEN_SOURCE = "$request.header.Authorization"


def _token(r: OptionReader, ttl_seconds: int, identity_sources: tuple[str, ...]) -> TokenAuthorizerOptions | None:
    max_entries = int(r.number("resultCacheMaxEntries", 10_000, 1, 10_000_000))
    expression = r.string("identityValidationExpression")
    pattern = None
    if expression is not None:
        try:
            pattern = re.compile(expression)
        except re.error as exc:
            r.problem("identityValidationExpression", f"is not a regular expression: {exc}")
    sources = identity_sources or (DEFAULT_TOKEN_SOURCE,)
    header = None
    if len(sources) != 1:
        r.problem("identitySource", "a TOKEN authorizer reads exactly one header, e.g. "
                  "$request.header.Authorization (use type: request for several sources)")
    else:
        found = TOKEN_SOURCE.match(sources[0])
        if found is None:
            r.problem("identitySource", f"'{sources[0]}': a TOKEN authorizer reads a header "
                      "($request.header.X or method.request.header.X)")
        else:
            header = found.group(2)
    r.unknown(ignored=frozenset({"timeoutMs"}))
    if header is None or r.problems:
        return None
    return TokenAuthorizerOptions(header, pattern, max_entries)


COGNITO_POOL_ARN = re.compile(r"^arn:aws[a-z-]*:cognito-idp:([a-z]{2}(?:-[a-z]+)+-\d):\d{12}:userpool/"
                              r"([a-z]{2}(?:-[a-z]+)+-\d_[0-9A-Za-z]+)$")


def cognito_issuer(pool_arn: str) -> str | None:
    """The issuer of a user pool's tokens, from its ARN: https://cognito-idp.{region}.amazonaws.com/{poolId}."""
    found = COGNITO_POOL_ARN.match(pool_arn)
    if found is None:
        return None
    return f"https://cognito-idp.{found.group(1)}.amazonaws.com/{found.group(2)}"


def _cognito(r: OptionReader, ttl_seconds: int,
             identity_sources: tuple[str, ...]) -> CognitoAuthorizerOptions | None:
    issuer = r.string("issuer")
    arn = r.string("userPoolArn")
    if arn is not None:
        from_arn = cognito_issuer(arn)
        if from_arn is None:
            r.problem("userPoolArn", "must look like arn:aws:cognito-idp:eu-west-1:123456789012:userpool/"
                      "eu-west-1_AbCdEf")
        elif issuer is not None and issuer.rstrip("/") != from_arn:
            r.problem("issuer", f"does not match userPoolArn (its issuer is {from_arn}); give one of them")
        issuer = from_arn or issuer
    if issuer is None and arn is None:
        r.problem("issuer", "missing: give the pool's issuer (https://cognito-idp.{region}.amazonaws.com/"
                  "{poolId}) or userPoolArn")
    clients = r.string_list("appClientIds", required=True, example="[abc123]")
    uses = r.string_list("tokenUse") or ("id", "access")
    for use in uses:
        if use not in ("id", "access"):
            r.problem("tokenUse", f"'{use}' is not id or access")
    jwks_uri = r.string("jwksUri")
    algorithms = r.string_list("algorithms") or ("RS256",)
    leeway = r.number("leewaySeconds", 0, 0, 600)
    timeout_ms = r.number("jwksTimeoutMs", 2000, 50, 29_000)
    refresh_s = r.number("jwksRefreshSeconds", 30, 0, 86_400)
    max_age_s = r.number("jwksCacheSeconds", 3600, 1, 86_400)
    for alg in algorithms:
        if alg not in SUPPORTED_ALGORITHMS:
            r.problem("algorithms", f"'{alg}' is not one of: " + ", ".join(SUPPORTED_ALGORITHMS))
    if ttl_seconds:
        r.problem("resultTtlInSeconds", "a Cognito authorizer checks each token locally; remove this key")
    for text in identity_sources or (DEFAULT_IDENTITY_SOURCE,):
        if not text.startswith(("route.request.header.", "route.request.querystring.", "$request.header.",
                                "$request.querystring.", "method.request.header.")):
            r.problem("identitySource", f"'{text}': a token comes from a header or a query parameter")
    r.unknown()
    if issuer is None or clients is None or r.problems:
        return None
    issuer = issuer.rstrip("/")
    jwks = jwks_uri or f"{issuer}/.well-known/jwks.json"
    jwt = JwtAuthorizerOptions(issuer, frozenset(clients), jwks, tuple(algorithms), leeway, None, timeout_ms,
                               refresh_s, max_age_s)
    return CognitoAuthorizerOptions(jwt, frozenset(uses))


def is_url(text: str) -> bool:
    return text.startswith(("https://", "http://"))


AUTHORIZER_OPTIONS: dict[str, Callable[[OptionReader, int, tuple[str, ...]], AuthorizerOptions | None]] = {
    "request": _request,
    "jwt": _jwt,
    "token": _token,
    "cognito": _cognito,
}


def parse_authorizer_options(name: str, kind: str, raw: Mapping[str, Any], ttl_seconds: int,
                             identity_sources: tuple[str, ...]) -> tuple[AuthorizerOptions | None, list[ConfigProblem]]:
    """The type's options from `raw` (without the common keys), and every problem found."""
    reader = OptionReader(name, kind, {k: v for k, v in raw.items() if k not in COMMON_KEYS})
    options = AUTHORIZER_OPTIONS[kind](reader, ttl_seconds, identity_sources)
    return (options if not reader.problems else None), reader.problems
