"""The authorizer interface: decide on a $connect (or an HTTP request) before any handler runs."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from wsgw.authorizers.fronts import AuthRequest
from wsgw.aws.policy import AuthorizerDecision
from wsgw.config import ApiConfig, AuthorizerSpec
from wsgw.integrations.base import Resources

log = logging.getLogger("wsgw.authorizers")

#: What a client is told when an authorizer refuses, as AWS words it; any other status is a 500.
REFUSAL_MESSAGES: dict[int, str] = {401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error"}


def status_message(status: int) -> str:
    """AWS's message for an authorizer's refusal status: Unauthorized, Forbidden, else Internal Server Error."""
    return REFUSAL_MESSAGES.get(status, REFUSAL_MESSAGES[500])


@dataclass(slots=True)
class AuthOutcome:
    """Allow (status 200) with the context later events carry, or a refusal status (401, 403, 500)."""

    status: int
    context: dict[str, object] | None = None
    subprotocol: str | None = None      # the subprotocol to answer when the token rode in Sec-WebSocket-Protocol
    message: str = ""
    consumed: tuple[str, ...] = ()      # offered subprotocols that were credentials: never to be answered
    decision: AuthorizerDecision | None = None   # a Lambda authorizer's policy (what else it allows: the cache's
                                                 # execute-api:InvalidateCache) and principalId

    @property
    def allowed(self) -> bool:
        return self.status == 200


class Authorizer(ABC):
    """One class per authorizer type (request, jwt); built once from config."""

    type_name: ClassVar[str]

    def __init__(self, spec: AuthorizerSpec) -> None:
        self.spec = spec

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: AuthorizerSpec, api: ApiConfig, resources: Resources) -> Authorizer:
        """Build from config; raise ConfigError naming the key when options are wrong."""

    @abstractmethod
    async def authorize(self, request: AuthRequest) -> AuthOutcome: ...

    async def close(self) -> None:
        return None


async def run_authorizer(authorizer: Authorizer, request: AuthRequest) -> AuthOutcome:
    """Ask `authorizer` about `request`, as both fronts do: one that raises refuses with 500 (logged)."""
    try:
        return await authorizer.authorize(request)
    except Exception:
        log.exception("authorizer %s failed on %s (requestId %s)", authorizer.spec.name, request.route_key,
                      request.request_id)
        return AuthOutcome(500, message=status_message(500))
