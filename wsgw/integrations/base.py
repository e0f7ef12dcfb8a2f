"""The integration interface: one class per type, called with an AWS-shaped event."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.integrations.handler_pool import HandlerPool


class IntegrationFailed(Exception):
    """The backend failed (raised, refused, answered garbage); the client gets the AWS error frame."""

    #: the function's own errorMessage when a Lambda raised (an authorizer's "Unauthorized" means 401)
    function_message: str | None = None


class Refused(Exception):
    """The integration refuses this caller (a relay route for a non-member): the client gets AWS's Forbidden frame."""


@dataclass(slots=True)
class Resources:
    """Things integrations share within one node: the threads for sync handlers (and, apart, for the rare
    blocking call of an integration: credentials), HTTP sessions, and the variables every in-process function
    of the node sees (wsgw.integrations.environment.node_environment)."""

    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(16, "wsgw-blocking"))
    handler_pool: HandlerPool = field(default_factory=HandlerPool)
    shared: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)

    async def close(self) -> None:
        for value in self.shared.values():
            closer = getattr(value, "close", None)
            if closer is not None:
                result = closer()
                if asyncio.iscoroutine(result):
                    await result
        self.shared.clear()
        self.stop_threads()

    def stop_threads(self) -> None:
        """Queued calls never run; threads end once their function returned."""
        self.handler_pool.shutdown()
        self.executor.shutdown(wait=False, cancel_futures=True)


class Integration(ABC):
    """Calls one handler with an event and returns its raw Lambda-proxy-style result."""

    type_name: ClassVar[str]

    def __init__(self, spec: IntegrationSpec, function_name: str) -> None:
        self.spec = spec
        self.timeout_ms = spec.timeout_ms
        self.function_name = function_name

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> Integration:
        """Build from config; raise ConfigError naming spec.key when options are wrong."""

    @abstractmethod
    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        """Run the handler; raise IntegrationFailed (or anything) on failure."""

    async def close(self) -> None:
        """Release what the integration holds; most hold nothing."""
        return None
