"""`amqp`: publish the record to RabbitMQ (`exchange`, `routingKey`) on a channel in confirm mode; the route
answers only after the broker's ack. A nack, an unroutable message (`mandatory`, the default) or a broker that is
down fails the call (AWS's error frame): nothing is reported queued that the broker did not take.

The payload is the body (or the template's output); the identity travels as AMQP headers (connectionId, routeKey,
requestId, eventType, stage, apiId, sourceIp, principalId, authorizer as JSON), message_id is the requestId.
One robust connection (aio-pika, which reconnects by itself after a broker restart) and channel per URL.
"""

from __future__ import annotations

import os
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.config.service_integrations import AmqpOptions
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.queue_records import Shared, queued, record, shared

AmqpLink = tuple[AbstractRobustConnection, AbstractRobustChannel]


def connection_name(role: str) -> str:
    """What `rabbitmqctl list_connections client_properties` shows: which part of which wsgw process holds it, so
    an operator (or a test) can close exactly that connection."""
    return f"wsgw-{role}-{os.getpid()}"


def amqp_link(url: str) -> Shared[AmqpLink]:
    """One robust connection and confirm-mode channel to `url` (a failed first connect is retried next call)."""
    async def open_client() -> AmqpLink:
        connection = await aio_pika.connect_robust(url, timeout=5, reconnect_interval=0.5,
                                                   client_properties={"connection_name": connection_name("publisher")})
        channel = await connection.channel(publisher_confirms=True)
        return connection, channel

    async def close_client(link: AmqpLink) -> None:
        await link[0].close()

    return Shared(open_client, close_client)


class AmqpIntegration(Integration):
    """Options: routingKey (required), exchange (default ""), url, persistent, mandatory, template, headers."""

    type_name = "amqp"

    def __init__(self, spec: IntegrationSpec, function_name: str, options: AmqpOptions,
                 link: Shared[AmqpLink]) -> None:
        super().__init__(spec, function_name)
        self.options = options
        self.link = link
        self.what = f"AMQP publish {options.exchange or '(default)'}/{options.routing_key} ({spec.key})"

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> AmqpIntegration:
        options = spec.options
        assert isinstance(options, AmqpOptions)
        return cls(spec, function_name, options, shared(resources, f"amqp:{options.url}",
                                                        lambda: amqp_link(options.url)))

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        payload, fields = record(event, self.options.template, self.what)
        message = aio_pika.Message(
            payload, headers={**self.options.headers, **fields}, message_id=fields.get("requestId"),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT if self.options.persistent else None,
            content_type="application/octet-stream" if fields.get("isBase64Encoded") else "text/plain",
            app_id="wsgw")
        try:
            _connection, channel = await self.link.get()
            exchange = (channel.default_exchange if not self.options.exchange
                        else await channel.get_exchange(self.options.exchange, ensure=False))
            confirmation = await exchange.publish(message, self.options.routing_key,
                                                  mandatory=self.options.mandatory,
                                                  timeout=self.spec.timeout_ms / 1000)
        except TimeoutError as exc:
            raise IntegrationFailed(f"{self.what}: the broker did not confirm in time") from exc
        except Exception as exc:     # aio-pika/aiormq: DeliveryError (nack, returned), closed channel or connection
            raise IntegrationFailed(f"{self.what} failed: {type(exc).__name__}: {exc}") from exc
        if confirmation is not None and not _acked(confirmation):
            raise IntegrationFailed(f"{self.what}: the broker refused the message ({confirmation!r})")
        return queued(fields.get("requestId"))


def _acked(confirmation: object) -> bool:
    from pamqp.commands import Basic

    return isinstance(confirmation, Basic.Ack)
