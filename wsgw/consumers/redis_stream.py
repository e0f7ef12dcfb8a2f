"""Pushes from a Redis stream read with a consumer group: each node reads as its own consumer (XREADGROUP), so
a push is taken by one node, which delivers it (forwarded through the registry when the connection is held
elsewhere), reports to `results` (XADD), then XACKs. A push whose delivery failed stays pending and is claimed
again (XAUTOCLAIM) after `CLAIM_IDLE_MS`, also from a node that died; past maxAttempts, and at once when
malformed or oversized, it goes to `deadLetter` with the reason and is acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from wsgw.config.consumers import ConsumerSpec
from wsgw.consumers.base import NodePlace, PushTarget, deliver, log
from wsgw.consumers.push import Poison, dead_letter, read_fields, result

CLAIM_IDLE_MS = 5_000
BLOCK_MS = 1_000
BATCH = 64
RESULTS_MAX_LEN = 100_000


class RedisStreamConsumer:
    def __init__(self, spec: ConsumerSpec, url: str, target: PushTarget, consumer: str) -> None:
        self.spec = spec
        self.url = url
        self.target = target
        self.consumer = consumer
        self.client: aioredis.Redis | None = None
        self.task: asyncio.Task[None] | None = None
        self.attempts: dict[bytes, int] = {}

    @classmethod
    def from_spec(cls, spec: ConsumerSpec, target: PushTarget, place: NodePlace) -> RedisStreamConsumer:
        url = spec.url or place.registry_url
        if not url:
            raise ValueError(f"{spec.key}.url: no Redis URL given and the node's registry is in memory")
        return cls(spec, url, target, place.node_id)

    async def start(self) -> None:
        self.client = aioredis.Redis.from_url(self.url, socket_connect_timeout=2,
                                              socket_timeout=(BLOCK_MS / 1000) + 5)
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"consumer {self.spec.source}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.client is not None:
            await self.client.aclose()

    async def _ensure_group(self) -> None:
        assert self.client is not None
        try:
            await self.client.xgroup_create(self.spec.source, self.spec.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _run(self) -> None:
        assert self.client is not None
        ready = False
        last_claim = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not ready:
                    await self._ensure_group()
                    ready = True
                if loop.time() - last_claim > CLAIM_IDLE_MS / 2000:
                    last_claim = loop.time()
                    await self._claim()
                reply: Any = await self.client.xreadgroup(self.spec.group, self.consumer, {self.spec.source: ">"},
                                                     count=BATCH, block=BLOCK_MS)
                for _stream, entries in reply or []:
                    await self._handle_batch(entries)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):       # the stream was deleted (or Redis restarted empty)
                    ready = False
                else:
                    log.warning("consumer %s: %s", self.spec.source, exc)
                await asyncio.sleep(0.2)
            except (RedisError, OSError) as exc:
                log.warning("consumer %s: Redis unavailable (%s); retrying", self.spec.source, exc)
                ready = False
                await asyncio.sleep(0.25)

    async def _claim(self) -> None:
        """Take pushes pending too long on any consumer (a failed delivery, a dead node) and handle them again."""
        assert self.client is not None
        reply = await self.client.xautoclaim(self.spec.source, self.spec.group, self.consumer, CLAIM_IDLE_MS,
                                             "0-0", count=BATCH)
        entries = []
        for entry_id, fields in reply[1] if len(reply) > 1 else []:
            if fields is None:
                continue
            pending = await self.client.xpending_range(self.spec.source, self.spec.group, entry_id, entry_id, 1)
            delivered = int(pending[0]["times_delivered"]) if pending else 1
            self.attempts[entry_id] = max(self.attempts.get(entry_id, 0), delivered - 1)
            entries.append((entry_id, fields))
        await self._handle_batch(entries)

    async def _handle_batch(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Each push in order; results, dead letters and XACKs of the batch go in one pipeline once its frames
        were written (or their connections found gone)."""
        assert self.client is not None
        pipe = self.client.pipeline(transaction=False)
        for entry_id, fields in entries:
            await self._handle(pipe, entry_id, fields)
        if len(pipe):
            await pipe.execute()

    async def _handle(self, pipe: Any, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        source_id = entry_id.decode()
        try:
            push = read_fields(fields, self.spec.max_bytes)
        except Poison as exc:
            self._dead(pipe, entry_id, fields, str(exc))
            return
        try:
            outcome = await deliver(self.target, push)
        except asyncio.CancelledError:
            raise
        except Exception as exc:       # the registry could not say: left pending, claimed again later
            attempts = self.attempts[entry_id] = self.attempts.get(entry_id, 0) + 1
            if attempts >= self.spec.max_attempts:
                self._dead(pipe, entry_id, fields, f"not delivered after {attempts} attempts: {exc}")
            else:
                log.warning("push %s from %s not delivered (%s); it will be retried", source_id, self.spec.source,
                            exc)
            return
        self.attempts.pop(entry_id, None)
        if self.spec.results:
            pipe.xadd(self.spec.results, {"result": orjson.dumps(result(push, outcome, source_id))},
                      maxlen=RESULTS_MAX_LEN, approximate=True)
        pipe.xack(self.spec.source, self.spec.group, entry_id)

    def _dead(self, pipe: Any, entry_id: bytes, fields: dict[bytes, bytes], reason: str) -> None:
        log.warning("push %s from %s dead-lettered: %s", entry_id.decode(), self.spec.source, reason)
        self.attempts.pop(entry_id, None)
        if self.spec.dead_letter:
            entry: dict[Any, Any] = {**fields, **dead_letter(reason, entry_id.decode())}
            pipe.xadd(self.spec.dead_letter, entry, maxlen=RESULTS_MAX_LEN, approximate=True)
        pipe.xack(self.spec.source, self.spec.group, entry_id)
