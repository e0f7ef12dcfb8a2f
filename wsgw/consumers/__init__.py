"""Workers push back through the queue systems (`consumers:`): one consumer per configured source, started
with the node and stopped before it (wsgw.server.app)."""

from __future__ import annotations

import importlib
import logging
from typing import Protocol

from wsgw.config.consumers import ConsumerSpec
from wsgw.consumers.base import Consumer, NodePlace, PushTarget

log = logging.getLogger("wsgw.consumers")


class ConsumerClass(Protocol):
    def from_spec(self, spec: ConsumerSpec, target: PushTarget, place: NodePlace) -> Consumer: ...


# type → "module:Class" of its consumer: one file per system, imported only when configured (its client library)
CONSUMER_CLASSES: dict[str, str] = {
    "redis_stream": "wsgw.consumers.redis_stream:RedisStreamConsumer",
    "nats": "wsgw.consumers.nats:NatsConsumer",
    "amqp": "wsgw.consumers.amqp:AmqpConsumer",
}


def consumer_class(type_name: str) -> ConsumerClass:
    module, _, name = CONSUMER_CLASSES[type_name].partition(":")
    found: ConsumerClass = getattr(importlib.import_module(module), name)
    return found


class Consumers:
    """The node's consumers; clients are imported only for the types configured."""

    def __init__(self, specs: tuple[ConsumerSpec, ...], target: PushTarget, registry_url: str | None,
                 node_id: str) -> None:
        self.running: list[Consumer] = []
        place = NodePlace(registry_url, node_id)
        self.made: list[Consumer] = [consumer_class(spec.type).from_spec(spec, target, place) for spec in specs]

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
