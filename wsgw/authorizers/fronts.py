"""What an authorizer is asked, typed by the front it came from (WebSocket $connect or the REST front).

The two fronts differ where AWS documents them differently: the REQUEST authorizer's input event, the
answers it may give (HTTP APIs also take the simple `{isAuthorized}`), what `context.X` identity sources
read, and the shape of `requestContext.authorizer` in later events. Each difference is a method here, so
authorizers call it instead of asking which front they serve.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

from wsgw.aws.policy import AuthorizerDecision, parse_authorizer_response, parse_simple_response
from wsgw.aws.websocket_events import ConnectionInfo, authorizer_request_event
from wsgw.headers import Headers


class Front(Enum):
    """Which front a request came through; part of a cached decision's key (one never answers the other)."""

    WEBSOCKET = "ws"
    REST = "http"


@dataclass(slots=True)
class AuthRequest(ABC):
    """What an authorizer may look at: the request and where it is going."""

    front: ClassVar[Front]

    info: ConnectionInfo
    headers: Headers
    query: list[tuple[str, str]]
    stage_variables: dict[str, str]
    request_id: str
    now_ms: int
    route_key: str
    method_arn: str
    # the route's authorizationScopes: a JWT/Cognito token must carry one of them (None: the authorizer's own)
    required_scopes: tuple[str, ...] | None = field(default=None, kw_only=True)

    @property
    def subprotocols(self) -> list[str]:
        """Subprotocols the client offered (a WebSocket handshake's); a token may ride in one."""
        return []

    @abstractmethod
    def request_context(self) -> Mapping[str, object]:
        """What `context.X` identity sources read."""

    @abstractmethod
    def lambda_event(self, identity: list[str]) -> dict[str, object]:
        """The REQUEST authorizer's input event; `identity` holds the identity sources' values."""

    @abstractmethod
    def read_decision(self, raw: object) -> AuthorizerDecision:
        """A REQUEST authorizer's answer (already JSON-decoded); AuthorizerResponseError when malformed."""

    @abstractmethod
    def lambda_context(self, decision: AuthorizerDecision, latency_ms: int) -> dict[str, object] | None:
        """requestContext.authorizer of later events for an allowing REQUEST decision; None when this front
        cannot be authorized by such a decision (a simple response never opens a socket)."""

    @abstractmethod
    def jwt_context(self, principal: object, jwt: dict[str, object], latency_ms: int) -> dict[str, object]:
        """requestContext.authorizer of later events for a valid JWT (`jwt` holds claims and scopes)."""


@dataclass(slots=True)
class WebSocketAuthRequest(AuthRequest):
    """A $connect handshake: AWS's WebSocket REQUEST authorizer shapes (methodArn, flat context)."""

    front: ClassVar[Front] = Front.WEBSOCKET

    offered: list[str] = field(default_factory=list)     # Sec-WebSocket-Protocol values

    @property
    def subprotocols(self) -> list[str]:
        return self.offered

    def request_context(self) -> Mapping[str, object]:
        info = self.info
        identity: dict[str, object] = {"sourceIp": info.source_ip}
        if info.user_agent is not None:
            identity["userAgent"] = info.user_agent
        return {
            "routeKey": self.route_key,
            "eventType": "CONNECT",
            "stage": info.stage,
            "connectedAt": info.connected_at_ms,
            "requestTimeEpoch": self.now_ms,
            "identity": identity,
            "requestId": self.request_id,
            "domainName": info.domain_name,
            "connectionId": info.connection_id,
            "apiId": info.api_id,
        }

    def lambda_event(self, identity: list[str]) -> dict[str, object]:
        return authorizer_request_event(self.info, self.method_arn, self.headers, self.query,
                                        self.stage_variables or None, self.request_id, self.now_ms)

    def read_decision(self, raw: object) -> AuthorizerDecision:
        return parse_authorizer_response(raw)

    def lambda_context(self, decision: AuthorizerDecision, latency_ms: int) -> dict[str, object] | None:
        if decision.simple:
            return None
        return decision.authorizer_context(latency_ms)

    def jwt_context(self, principal: object, jwt: dict[str, object], latency_ms: int) -> dict[str, object]:
        return {"principalId": principal if isinstance(principal, str) else None, "jwt": jwt,
                "integrationLatency": latency_ms}


@dataclass(slots=True)
class RestAuthRequest(AuthRequest):
    """A REST front request: AWS's HTTP API (payload 2.0) authorizer shapes (routeArn, nested context)."""

    front: ClassVar[Front] = Front.REST

    event: dict[str, object]          # the request's payload 2.0 event

    def request_context(self) -> Mapping[str, object]:
        context = self.event.get("requestContext")
        return context if isinstance(context, Mapping) else {}

    def lambda_event(self, identity: list[str]) -> dict[str, object]:
        shown = {k: v for k, v in self.event.items() if k not in ("version", "body", "isBase64Encoded")}
        return {"version": "2.0", "type": "REQUEST", "routeArn": self.method_arn, "identitySource": identity,
                **shown}

    def read_decision(self, raw: object) -> AuthorizerDecision:
        simple = parse_simple_response(raw)
        if simple is not None:
            return simple
        return parse_authorizer_response(raw, max_bytes=None, flat_context=False)

    def lambda_context(self, decision: AuthorizerDecision, latency_ms: int) -> dict[str, object] | None:
        return {"lambda": dict(decision.context)}

    def jwt_context(self, principal: object, jwt: dict[str, object], latency_ms: int) -> dict[str, object]:
        return {"jwt": jwt}


__all__ = ["AuthRequest", "Front", "RestAuthRequest", "WebSocketAuthRequest"]
