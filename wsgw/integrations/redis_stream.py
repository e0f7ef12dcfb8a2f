"""`redis_stream`: XADD the record to `stream` (MAXLEN ~ maxLen) on `url`, else the registry's Redis.

Fields: `body` (the message, or the template's output) and the identity (connectionId, routeKey, requestId,
eventType, stage, apiId, sourceIp, principalId, authorizer as JSON). The route answers `{"queued": true,
"id": "<entry id>"}` only after Redis returned the entry id; an unreachable Redis fails the call (AWS's error
frame). The node shares one connection pool per URL; redis-py reconnects on the next command after a restart.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.config.service_integrations import RedisStreamOptions
from wsgw.errors import ConfigError
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.queue_records import Shared, queued, record, shared

REGISTRY_URL_KEY = "registry.redis_url"     # set by build_node when the node runs on Redis


def _client(url: str, timeout_s: float) -> Shared[aioredis.Redis]:
    async def open_client() -> aioredis.Redis:
        return aioredis.Redis.from_url(url, socket_connect_timeout=min(timeout_s, 5.0), socket_timeout=timeout_s,
                                       health_check_interval=10)

    async def close_client(client: aioredis.Redis) -> None:
        await client.aclose()

    return Shared(open_client, close_client)


class RedisStreamIntegration(Integration):
    """Options: stream (required), url (default: the registry's Redis), maxLen, template."""

    type_name = "redis_stream"

    def __init__(self, spec: IntegrationSpec, function_name: str, options: RedisStreamOptions,
                 client: Shared[aioredis.Redis]) -> None:
        super().__init__(spec, function_name)
        self.options = options
        self.client = client
        self.what = f"XADD {options.stream} ({spec.key})"

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> RedisStreamIntegration:
        options = spec.options
        assert isinstance(options, RedisStreamOptions)
        url = options.url or resources.shared.get(REGISTRY_URL_KEY)
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError.single(f"{spec.key}.url", "give the stream's Redis URL (the node's registry is not "
                                     "on a single Redis server)")
        timeout_s = spec.timeout_ms / 1000
        return cls(spec, function_name, options, shared(resources, f"redis_stream:{url}",
                                                        lambda: _client(url, timeout_s)))

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        payload, fields = record(event, self.options.template, self.what)
        entry: dict[Any, Any] = {"body": payload, **fields}
        try:
            client = await self.client.get()
            entry_id = await client.xadd(self.options.stream, entry, maxlen=self.options.max_len, approximate=True)
        except RedisError as exc:
            raise IntegrationFailed(f"{self.what} failed: {type(exc).__name__}: {exc}") from exc
        return queued(entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id))
