"""Workers push back through the queue systems (`consumers:`): one consumer per configured source, started
with the node and stopped before it (wsgw.server.app)."""

from __future__ import annotations

import logging
from typing import Protocol

from wsgw.config.consumers import ConsumerSpec
from wsgw.consumers.base import PushTarget

log = logging.getLogger("wsgw.consumers")


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Consumers:
    """The node's consumers; clients are imported only for the types configured."""

    def __init__(self, specs: tuple[ConsumerSpec, ...], target: PushTarget, registry_url: str | None,
                 node_id: str) -> None:
        self.running: list[Consumer] = []
        self.made: list[Consumer] = []
        for spec in specs:
            if spec.type == "redis_stream":
                from wsgw.consumers.redis_stream import RedisStreamConsumer

                url = spec.url or registry_url
                if not url:
                    raise ValueError(f"{spec.key}.url: no Redis URL given and the node's registry is in memory")
                self.made.append(RedisStreamConsumer(spec, url, target, node_id))
            elif spec.type == "nats":
                from wsgw.consumers.nats import NatsConsumer

                self.made.append(NatsConsumer(spec, target))
            else:
                from wsgw.consumers.amqp import AmqpConsumer

                self.made.append(AmqpConsumer(spec, target))

    async def start(self) -> None:
        for consumer in self.made:
            await consumer.start()
            self.running.append(consumer)

    async def stop(self) -> None:
        while self.running:
            consumer = self.running.pop()
            try:
                await consumer.stop()
            except Exception as exc:
                log.warning("stopping a consumer: %s", exc)
