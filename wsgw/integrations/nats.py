"""`nats`: publish the record to `subject`; with `jetstream: true` the route answers only after the stream's
acknowledgement (PubAck), else after the server answered a flush (it has the message).

The payload is the body (or the template's output); the identity travels as NATS headers (connectionId,
routeKey, requestId, eventType, stage, apiId, sourceIp, principalId, authorizer as JSON). One connection per
URL for the node (nats-py, which reconnects by itself after a server restart); a publish that the server did not
confirm within the timeout fails the call (AWS's error frame), so nothing is reported queued that it did not take.
"""

from __future__ import annotations

from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.config.service_integrations import NatsOptions
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.queue_records import Shared, queued, record, shared


def nats_client(url: str) -> Shared[NatsClient]:
    """One connection to `url`, reconnecting forever (the first connect is retried by the next call)."""
    async def open_client() -> NatsClient:
        return await nats.connect(url, connect_timeout=2, allow_reconnect=True, max_reconnect_attempts=-1,
                                  reconnect_time_wait=0.25, name="wsgw")

    async def close_client(client: NatsClient) -> None:
        if not client.is_closed:
            await client.drain() if client.is_connected else await client.close()

    return Shared(open_client, close_client)


class NatsIntegration(Integration):
    """Options: subject (required), url (nats://127.0.0.1:4222), jetstream, template."""

    type_name = "nats"

    def __init__(self, spec: IntegrationSpec, function_name: str, options: NatsOptions,
                 client: Shared[NatsClient]) -> None:
        super().__init__(spec, function_name)
        self.options = options
        self.client = client
        self.what = f"NATS publish {options.subject} ({spec.key})"

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> NatsIntegration:
        options = spec.options
        assert isinstance(options, NatsOptions)
        return cls(spec, function_name, options, shared(resources, f"nats:{options.url}",
                                                        lambda: nats_client(options.url)))

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        payload, headers = record(event, self.options.template, self.what)
        timeout = self.spec.timeout_ms / 1000
        try:
            client = await self.client.get()
            if self.options.jetstream:
                ack = await client.jetstream().publish(self.options.subject, payload, timeout=timeout,
                                                       headers=headers)
                return queued(f"{ack.stream}:{ack.seq}")
            if not client.is_connected:
                raise IntegrationFailed(f"{self.what}: not connected to {self.options.url} (reconnecting)")
            await client.publish(self.options.subject, payload, headers=headers)
            await client.flush(timeout=max(1, round(timeout)))
        except (NatsError, OSError) as exc:
            raise IntegrationFailed(f"{self.what} failed: {type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise IntegrationFailed(f"{self.what}: the server did not confirm in time") from exc
        return queued(None)
