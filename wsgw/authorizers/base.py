"""The authorizer interface: decide on a $connect (or an HTTP request) before any handler runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.config import ApiConfig, AuthorizerSpec
from wsgw.integrations.base import Resources

#: What a client is told when an authorizer refuses, as AWS words it; any other status is a 500.
REFUSAL_MESSAGES: dict[int, str] = {401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error"}


def status_message(status: int) -> str:
    """AWS's message for an authorizer's refusal status: Unauthorized, Forbidden, else Internal Server Error."""
    return REFUSAL_MESSAGES.get(status, REFUSAL_MESSAGES[500])


@dataclass(slots=True)
class AuthRequest:
    """What an authorizer may look at: the handshake (or HTTP request) and where it is going."""

    info: ConnectionInfo
    headers: list[tuple[str, str]]
    query: list[tuple[str, str]]
    stage_variables: dict[str, str]
    request_id: str
    now_ms: int
    route_key: str
    method_arn: str
    subprotocols: list[str] = field(default_factory=list)
    http_event: dict[str, object] | None = None   # set by the REST front (payload 2.0 identity)


@dataclass(slots=True)
class AuthOutcome:
    """Allow (status 200) with the context later events carry, or a refusal status (401, 403, 500)."""

    status: int
    context: dict[str, object] | None = None
    subprotocol: str | None = None      # the subprotocol to answer when the token rode in Sec-WebSocket-Protocol
    message: str = ""
    consumed: tuple[str, ...] = ()      # offered subprotocols that were credentials: never to be answered

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
