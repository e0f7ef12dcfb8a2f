"""Pushes from a RabbitMQ queue (declared durable): one confirm-less consumer channel with `prefetch` unacked
messages, handled one at a time in order. A push is acknowledged only after the frame was written or the
connection is known gone; the result is published to the message's `reply_to` (else to `results`) with its
correlation id. A poison message goes to `deadLetter` with a `reason` header (rejected without requeue when no
queue is named); a push whose delivery failed is requeued up to maxAttempts times. aio-pika's robust connection
reconnects and consumes again after a broker restart (or a broker-side close); pushes taken on the dropped channel
are left to the broker's redelivery, and a redelivered push whose message_id this node recently wrote is only
acknowledged, not written to the socket again."""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import ChannelInvalidStateError

from wsgw.config.consumers import ConsumerSpec
from wsgw.consumers.base import NodePlace, PushTarget, deliver, log, take
from wsgw.consumers.push import result
from wsgw.integrations.amqp import connection_name

WRITTEN_KEPT = 10_000
PERSISTENT = aio_pika.DeliveryMode.PERSISTENT     # results and dead letters (durable queues) outlive a broker restart


class AmqpConsumer:
    @classmethod
    def from_spec(cls, spec: ConsumerSpec, target: PushTarget, place: NodePlace) -> AmqpConsumer:
        return cls(spec, target)

    def __init__(self, spec: ConsumerSpec, target: PushTarget) -> None:
        self.spec = spec
        self.target = target
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractRobustChannel | None = None
        self.inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.attempts: dict[str, int] = {}
        # pushes this node wrote to their socket, by message_id (the latest WRITTEN_KEPT): outcome, result sent. An
        # ack lost with the connection, or taken by a broker that shut down before storing it, brings the push back
        # redelivered: it is then acknowledged (and its result sent if it was not), not written again
        self.written: dict[str, tuple[int | bool, bool]] = {}

    async def start(self) -> None:
        self.connection = await aio_pika.connect_robust(
            self.spec.url or "", timeout=5, reconnect_interval=0.5,
            client_properties={"connection_name": connection_name("consumer")})
        channel = await self.connection.channel()
        assert isinstance(channel, AbstractRobustChannel)
        self.channel = channel
        await channel.set_qos(prefetch_count=self.spec.prefetch)
        for name in (self.spec.results, self.spec.dead_letter):
            if name:
                await channel.declare_queue(name, durable=True)
        queue = await channel.declare_queue(self.spec.source, durable=True)
        self.worker = asyncio.get_running_loop().create_task(self._work())
        await queue.consume(self.inbox.put)

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker
        if self.connection is not None:
            await self.connection.close()

    async def _work(self) -> None:
        while True:
            message = await self.inbox.get()
            try:
                await self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:     # the channel closed under us: the broker redelivers the message
                log.warning("push from %s: %s: %s", self.spec.source, type(exc).__name__, exc)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        if _channel_gone(message):      # taken before the connection dropped: the broker delivers it again
            return
        headers = {str(k): v.decode() if isinstance(v, bytes) else str(v) for k, v in (message.headers or {}).items()}
        key = message.message_id or f"tag-{message.delivery_tag}"
        push = await take(message.body, headers, self.spec.max_bytes, partial(self._dead, message))
        if push is None:
            return
        done = self.written.get(message.message_id or "") if message.redelivered else None
        if done is None:
            try:
                done = (await deliver(self.target, push), False)
            except Exception as exc:
                await self._failed(message, key, exc)
                return
        self.attempts.pop(key, None)
        outcome, reported = done
        self._remember(message, outcome, reported)
        target = message.reply_to or self.spec.results
        if target and self.channel is not None and not reported:
            body = orjson.dumps(result(push, outcome, message.message_id))
            await self.channel.default_exchange.publish(
                aio_pika.Message(body, correlation_id=message.correlation_id or message.message_id,
                                 content_type="application/json", delivery_mode=PERSISTENT), target)
            self._remember(message, outcome, True)
        await message.ack()

    def _remember(self, message: AbstractIncomingMessage, outcome: int | bool, reported: bool) -> None:
        """Bounded: the oldest is forgotten first."""
        if not message.message_id:
            return
        self.written[message.message_id] = (outcome, reported)
        if len(self.written) > WRITTEN_KEPT:
            del self.written[next(iter(self.written))]

    async def _failed(self, message: AbstractIncomingMessage, key: str, exc: Exception) -> None:
        attempts = self.attempts[key] = self.attempts.get(key, 0) + 1
        if attempts >= self.spec.max_attempts:
            await self._dead(message, f"not delivered after {attempts} attempts: {exc}")
        else:
            log.warning("push %s from %s not delivered (%s); requeued", key, self.spec.source, exc)
            await asyncio.sleep(0.2)
            await message.nack(requeue=True)

    async def _dead(self, message: AbstractIncomingMessage, reason: str) -> None:
        log.warning("push from %s dead-lettered: %s", self.spec.source, reason)
        if self.spec.dead_letter and self.channel is not None:
            await self.channel.default_exchange.publish(
                aio_pika.Message(message.body, headers={**(message.headers or {}), "reason": reason},
                                 message_id=message.message_id, delivery_mode=PERSISTENT), self.spec.dead_letter)
            await message.ack()
        else:
            await message.reject(requeue=False)


def _channel_gone(message: AbstractIncomingMessage) -> bool:
    """Whether the channel the message came on has closed (its ack could no longer be sent)."""
    try:
        return message.channel.is_closed
    except ChannelInvalidStateError:
        return True
