"""Authorizer types by name; adding a type is a new module and one entry here."""

from __future__ import annotations

from wsgw.authorizers.base import Authorizer, AuthOutcome, run_authorizer, status_message
from wsgw.authorizers.cognito import CognitoAuthorizer
from wsgw.authorizers.fronts import AuthRequest, Front, RestAuthRequest, WebSocketAuthRequest
from wsgw.authorizers.jwt import JwtAuthorizer
from wsgw.authorizers.request import RequestAuthorizer
from wsgw.authorizers.token import TokenAuthorizer
from wsgw.config import ApiConfig
from wsgw.errors import ConfigError, ConfigProblem
from wsgw.integrations.base import Resources

AUTHORIZER_TYPES: dict[str, type[Authorizer]] = {
    cls.type_name: cls for cls in (RequestAuthorizer, TokenAuthorizer, JwtAuthorizer, CognitoAuthorizer)
}


def build_authorizers(api: ApiConfig, resources: Resources) -> dict[str, Authorizer]:
    """Build every configured authorizer; ConfigError lists each one that cannot be built."""
    built: dict[str, Authorizer] = {}
    problems: list[ConfigProblem] = []
    for name, spec in api.authorizers.items():
        cls = AUTHORIZER_TYPES.get(spec.type)
        if cls is None:
            problems.append(ConfigProblem(f"authorizers.{name}.type", f"'{spec.type}' is not one of: "
                                          + ", ".join(sorted(AUTHORIZER_TYPES))))
            continue
        try:
            built[name] = cls.from_spec(spec, api, resources)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return built


__all__ = ["AUTHORIZER_TYPES", "AuthOutcome", "AuthRequest", "Authorizer", "Front", "RestAuthRequest",
           "WebSocketAuthRequest", "build_authorizers", "run_authorizer", "status_message"]
