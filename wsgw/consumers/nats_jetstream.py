"""Pushes from a NATS JetStream stream (`jetstream: true`): a durable pull consumer that every node shares, so a
push published while no node runs, or taken by a node that died before writing it, is not lost.

Each push is acknowledged only after its frame was written (or the connection is known gone); one that could not
be delivered (the registry unreachable) is nak'ed and comes again, up to `maxAttempts`, then dead-lettered; a
poison message is dead-lettered with its reason and terminated (never redelivered). A push a node took but never
acknowledged (the node died) is redelivered after `ackWaitSeconds`. The result goes to `results` (a subject), as
a JetStream message's reply subject is its acknowledgement. The stream holding `subject` is the operator's
(`nats stream add`); until it exists the consumer logs it and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from typing import Any

import nats
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.client import JetStreamContext

from wsgw.config.consumers import ConsumerSpec
from wsgw.consumers.base import PushTarget, deliver, log, take
from wsgw.consumers.push import result

FETCH_WAIT_SECONDS = 1.0
RETRY_SECONDS = 1.0
NAK_DELAY_SECONDS = 0.5


class NatsJetStreamConsumer:
    def __init__(self, spec: ConsumerSpec, target: PushTarget) -> None:
        assert spec.durable is not None
        self.spec = spec
        self.durable = spec.durable
        self.target = target
        self.client: NatsClient | None = None
        self.subscription: JetStreamContext.PullSubscription | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"jetstream consumer {self.durable}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.client is not None and not self.client.is_closed:
            await self.client.close()

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        if self.client is None or self.client.is_closed:
            self.client = await nats.connect(self.spec.url or "", connect_timeout=2, allow_reconnect=True,
                                             max_reconnect_attempts=-1, reconnect_time_wait=0.25,
                                             name=f"wsgw-consumer {self.durable}")
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=float(self.spec.ack_wait_seconds),
                                max_ack_pending=max(self.spec.prefetch * 4, 256))
        return await self.client.jetstream().pull_subscribe(self.spec.source, durable=self.durable, config=config)

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                if self.subscription is None:
                    self.subscription = await self._subscribe()
                    if failing:
                        log.info("consumer %s: JetStream consumer %s is taking pushes again", self.spec.source,
                                 self.durable)
                    failing = False
                batch = await self.subscription.fetch(self.spec.prefetch, timeout=FETCH_WAIT_SECONDS)
            except TimeoutError:                  # nats' own and asyncio's: nothing to take in this wait
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:              # server away, stream missing, consumer lost: subscribe again
                if not failing:
                    log.warning("consumer %s: JetStream consumer %s unavailable (%r); retrying", self.spec.source,
                                self.durable, exc)
                failing = True
                self.subscription = None
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for msg in batch:                     # in order; each acknowledged once it is written or gone
                await self._handle(msg)

    async def _handle(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        push = await take(msg.data, headers, self.spec.max_bytes, partial(self._dead, msg))
        if push is None:
            return
        try:
            outcome = await deliver(self.target, push)
        except Exception as exc:
            attempts = msg.metadata.num_delivered or 1
            if attempts >= self.spec.max_attempts:
                await self._dead(msg, f"not delivered after {attempts} attempts: {exc}")
            else:
                log.warning("push on %s not delivered (%s); it comes again", self.spec.source, exc)
                await _quietly(msg.nak(delay=NAK_DELAY_SECONDS))
            return
        if self.spec.results and self.client is not None:
            answer: dict[str, Any] = result(push, outcome, _sequence(msg))
            await _quietly(self.client.publish(self.spec.results, orjson.dumps(answer)))
        await _quietly(msg.ack())

    async def _dead(self, msg: Msg, reason: str) -> None:
        log.warning("push on %s dead-lettered: %s", self.spec.source, reason)
        if self.spec.dead_letter and self.client is not None:
            await _quietly(self.client.publish(self.spec.dead_letter, msg.data,
                                               headers={"reason": reason, "subject": msg.subject}))
        await _quietly(msg.term())


def _sequence(msg: Msg) -> str | None:
    """The stream sequence: the push's id in results when the worker gave none."""
    sequence = msg.metadata.sequence.stream if msg.metadata.sequence is not None else None
    return None if sequence is None else str(sequence)


async def _quietly(step: Any) -> None:
    """An ack, nak, term or publish on a connection that is being lost: the server redelivers what was not acked,
    so a failure here is logged, never raised into the fetch loop."""
    try:
        await step
    except Exception as exc:
        log.warning("JetStream consumer: %s", exc)
