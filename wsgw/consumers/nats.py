"""Pushes from a NATS subject, read in a queue group (`queue`, default `wsgw`) so each push is taken by one node.
The result is the answer on the message's reply subject (a worker using `request()` gets delivered/gone); a
poison message is answered `{"status": "error", "reason": …}` and published to `deadLetter` with a `reason`
header. nats-py reconnects by itself after a server restart and resubscribes; messages of one subscription
are handled one at a time, in order."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import nats
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from wsgw.config.consumers import ConsumerSpec
from wsgw.consumers.base import Consumer, NodePlace, PushTarget, deliver, log, take
from wsgw.consumers.push import result


class NatsConsumer:
    @classmethod
    def from_spec(cls, spec: ConsumerSpec, target: PushTarget, place: NodePlace) -> Consumer:
        """Core NATS (a queue-group subscription), or with `jetstream: true` a durable JetStream consumer."""
        if spec.jetstream:
            from wsgw.consumers.nats_jetstream import NatsJetStreamConsumer

            return NatsJetStreamConsumer(spec, target)
        return cls(spec, target)

    def __init__(self, spec: ConsumerSpec, target: PushTarget) -> None:
        self.spec = spec
        self.target = target
        self.client: NatsClient | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._connect()
        except Exception as exc:   # a gateway starting before NATS consumes once NATS is up
            log.warning("consumer %s: NATS at %s unavailable (%s); retrying in the background", self.spec.source,
                        self.spec.url, exc)
            self.task = asyncio.get_running_loop().create_task(self._retry())

    async def _connect(self) -> None:
        self.client = await nats.connect(self.spec.url or "", connect_timeout=2, allow_reconnect=True,
                                         max_reconnect_attempts=-1, reconnect_time_wait=0.25, name="wsgw-consumer")
        await self.client.subscribe(self.spec.source, queue=self.spec.group, cb=self._handle,
                                    pending_msgs_limit=65536)

    async def _retry(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._connect()
                return
            except Exception:
                continue

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.client is not None and not self.client.is_closed:
            await self.client.close()

    async def _handle(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        push = await take(msg.data, headers, self.spec.max_bytes, partial(self._dead, msg))
        if push is None:
            return
        try:
            outcome = await deliver(self.target, push)
            answer: dict[str, Any] = result(push, outcome, None)
        except Exception as exc:     # core NATS has no redelivery: the worker is told, and may send again
            log.warning("push on %s not delivered: %s", self.spec.source, exc)
            answer = {"id": push.push_id, "status": "error", "reason": f"not delivered: {exc}"}
        if msg.reply:
            await msg.respond(orjson.dumps(answer))

    async def _dead(self, msg: Msg, reason: str) -> None:
        log.warning("push on %s dead-lettered: %s", self.spec.source, reason)
        assert self.client is not None
        if self.spec.dead_letter:
            await self.client.publish(self.spec.dead_letter, msg.data, headers={"reason": reason,
                                                                               "subject": msg.subject})
        if msg.reply:
            await msg.respond(orjson.dumps({"status": "error", "reason": reason}))
