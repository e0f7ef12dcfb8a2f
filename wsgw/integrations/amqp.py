"""`amqp`: publish the record to RabbitMQ (`exchange`, `routingKey`) on a channel in confirm mode; the route
answers only after the broker's ack. A nack, an unroutable message (`mandatory`, the default) or a broker that is
down fails the call (AWS's error frame): nothing is reported queued that the broker did not take.

The payload is the body (or the template's output); the identity travels as AMQP headers (connectionId, routeKey,
requestId, eventType, stage, apiId, sourceIp, principalId, authorizer as JSON), message_id is the requestId.
One connection and confirm-mode channel per URL for the node (AmqpLink), opened again by the first publish after
it closed (a broker restart or a broker-side close).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from functools import partial
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aio_pika.exceptions import DeliveryError

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.config.service_integrations import AmqpOptions
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.queue_records import Shared, queued, record, shared


class AmqpLink:
    """The node's connection and confirm-mode channel to one broker URL, opened again by the next publish once it
    closed (broker restart, broker-side close). A plain connection, not aio-pika's robust one: its restore after
    a broker crash could leave the connection never ready again (seen with aio-pika 10.2), and here a publish
    either finds an open channel, opens one, or fails within its timeout."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.discarded: list[AbstractChannel] = []      # closed at the next reopen (a live connection keeps them)
        self.lock = asyncio.Lock()

    async def confirm_channel(self) -> AbstractChannel:
        channel = self.channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self.lock:
            if self.channel is None or self.channel.is_closed:
                await self._reopen()
            assert self.channel is not None
            return self.channel

    async def _reopen(self) -> None:
        """A new channel on the connection if it is still open (a channel-level error closed the last one), else
        a new connection."""
        self.channel = None
        discarded, self.discarded = self.discarded, []
        for stale in discarded:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stale.close(), 1)
        if self.connection is not None and not self.connection.is_closed:
            with contextlib.suppress(Exception):
                self.channel = await self.connection.channel(publisher_confirms=True)
                return
        closed, self.connection = self.connection, None
        if closed is not None:
            with contextlib.suppress(Exception):
                await closed.close()
        connection = await aio_pika.connect(self.url, timeout=5,
                                            client_properties={"connection_name": connection_name("publisher")})
        try:
            self.channel = await connection.channel(publisher_confirms=True)
        except BaseException:
            await connection.close()
            raise
        self.connection = connection

    def discard(self, channel: AbstractChannel) -> None:
        """A publish on `channel` failed for a reason other than the broker's nack: the next publish opens a new
        channel (and connection, if that closed too) instead of trusting one that may not know it is dead yet."""
        if self.channel is channel:
            self.channel = None
            self.discarded.append(channel)

    @classmethod
    async def open(cls, url: str) -> AmqpLink:
        link = cls(url)
        await link.confirm_channel()
        return link

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


def connection_name(role: str) -> str:
    """What `rabbitmqctl list_connections client_properties` shows: which part of which wsgw process holds it, so
    an operator (or a test) can close exactly that connection."""
    return f"wsgw-{role}-{os.getpid()}"


def amqp_link(url: str) -> Shared[AmqpLink]:
    """One robust connection and confirm-mode channel to `url` (a failed first connect is retried next call)."""
    return Shared(partial(AmqpLink.open, url), AmqpLink.close)


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
        link: AmqpLink | None = None
        channel: AbstractChannel | None = None
        try:
            link = await self.link.get()
            channel = await link.confirm_channel()
            exchange = (channel.default_exchange if not self.options.exchange
                        else await channel.get_exchange(self.options.exchange, ensure=False))
            confirmation = await exchange.publish(message, self.options.routing_key,
                                                  mandatory=self.options.mandatory,
                                                  timeout=self.spec.timeout_ms / 1000)
        except DeliveryError as exc:     # the broker answered: nack or returned (unroutable); the channel is fine
            raise IntegrationFailed(f"{self.what} failed: {type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            if link is not None and channel is not None:
                link.discard(channel)
            raise IntegrationFailed(f"{self.what}: the broker did not confirm in time") from exc
        except Exception as exc:     # closed channel or connection, a connect refused
            if link is not None and channel is not None:
                link.discard(channel)
            raise IntegrationFailed(f"{self.what} failed: {type(exc).__name__}: {exc}") from exc
        if confirmation is not None and not _acked(confirmation):
            raise IntegrationFailed(f"{self.what}: the broker refused the message ({confirmation!r})")
        return queued(fields.get("requestId"))


def _acked(confirmation: object) -> bool:
    from pamqp.commands import Basic

    return isinstance(confirmation, Basic.Ack)
