"""What a worker imports to push to connections, with the @connections API's semantics either way:
`post()` returns True once the frame was handed to the client's socket (200), False when the connection is gone
(410); anything else (Redis or the node unreachable, 503/504) raises PushError — never a guessed success.

Groups, the same on every pusher: `join(group, id, since=None)` → the join's outcome (with `since`: whether the
history was replayed), None when the connection is gone; `leave(group, id)` → whether it was a member, None when
gone; `publish(group, data, exclude=None)` → how many sockets took it; `presence(group, limit, next_token)` →
`{"count", "members", "nextToken"?}`.

- HttpPusher / AsyncHttpPusher: over HTTP to any node (`endpoint` as boto3's endpoint_url: http://HOST:PORT/stage).
- RedisPusher / AsyncRedisPusher: straight to the node holding the connection through Redis, no HTTP hop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import orjson

from wsgw.aws.ids import new_id
from wsgw.aws.management import iso8601
from wsgw.registry.base import OwnerTimeout, RegistryUnavailable
from wsgw.registry.redis_link import RedisLink
from wsgw.registry.redis_rpc import Rpc
from wsgw.registry.redis_store import Keys, Store
from wsgw.registry.redis_wire import RedisOptions

T = TypeVar("T")

__all__ = ["AsyncHttpPusher", "AsyncRedisPusher", "HttpPusher", "PushError", "RedisPusher"]


class PushError(Exception):
    """The push's outcome is unknown or refused (not 200/410): status is the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _data(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def _read_connection(status: int, body: bytes) -> dict[str, Any] | None:
    if status == 410:
        return None
    if status != 200:
        raise PushError(status, body.decode("utf-8", "replace"))
    parsed = orjson.loads(body)
    return parsed if isinstance(parsed, dict) else None


def _expect(status: int, body: bytes, ok: int) -> bool:
    if status == ok:
        return True
    if status == 410:
        return False
    raise PushError(status, body.decode("utf-8", "replace"))


def _member_path(group: str, connection_id: str, since: int | None) -> str:
    path = f"/@groups/{quote(group, safe='')}/members/{quote(connection_id, safe='')}"
    return path if since is None else f"{path}?since={int(since)}"


def _group_path(group: str, **query: str | None) -> str:
    given = {k: v for k, v in query.items() if v is not None}
    return f"/@groups/{quote(group, safe='')}" + (f"?{urlencode(given)}" if given else "")


def _read_left(status: int, body: bytes) -> bool | None:
    answer = _read_connection(status, body)
    return None if answer is None else bool(answer.get("left"))


def _read_delivered(status: int, body: bytes) -> int:
    return int(_read_object(status, body).get("delivered", 0))


def _read_object(status: int, body: bytes) -> dict[str, Any]:
    if status != 200:
        raise PushError(status, body.decode("utf-8", "replace"))
    parsed = orjson.loads(body)
    if not isinstance(parsed, dict):
        raise PushError(502, "the node answered something that is not a JSON object")
    return parsed


# ----- HTTP ---------------------------------------------------------------------------------------------

class HttpPusher:
    """Blocking, one keep-alive connection per thread (stdlib only)."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        parts = urlsplit(endpoint.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint: '{endpoint}' is not http(s)://HOST:PORT/stage")
        self.parts = parts
        self.timeout = timeout
        self._local = threading.local()

    def _request(self, method: str, connection_id: str, body: bytes | None = None,
                 path: str | None = None) -> tuple[int, bytes]:
        """One request; PushError 503/504 when the node cannot be reached (never a raw socket error).

        A kept-alive connection the server closed meanwhile fails while sending: that is retried once on a
        fresh connection. A failure after the request went out is not retried for POST (the node may have
        delivered it: a retry could deliver the frame twice)."""
        path = self.parts.path + (path or f"/@connections/{quote(connection_id, safe='')}")
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                factory = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
                conn = factory(self.parts.hostname or "", self.parts.port, timeout=self.timeout)
                self._local.conn = conn
            sent = False
            try:
                conn.request(method, path, body=body)
                sent = True
                response = conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                retry = reused and not attempt and (not sent or method != "POST") and not isinstance(exc, TimeoutError)
                if not retry:
                    status = 504 if isinstance(exc, TimeoutError) else 503
                    raise PushError(status, f"node unreachable at {self.parts.netloc}: {exc!r}") from exc
        raise AssertionError("unreachable")

    def post(self, connection_id: str, data: bytes | str) -> bool:
        return _expect(*self._request("POST", connection_id, _data(data)), ok=200)

    def get(self, connection_id: str) -> dict[str, Any] | None:
        """GetConnection's JSON (connectedAt, lastActiveAt, identity), or None when gone."""
        return _read_connection(*self._request("GET", connection_id))

    def delete(self, connection_id: str) -> bool:
        return _expect(*self._request("DELETE", connection_id), ok=204)

    def join(self, group: str, connection_id: str, since: int | None = None) -> dict[str, Any] | None:
        return _read_connection(*self._request("PUT", "", path=_member_path(group, connection_id, since)))

    def leave(self, group: str, connection_id: str) -> bool | None:
        return _read_left(*self._request("DELETE", "", path=_member_path(group, connection_id, None)))

    def publish(self, group: str, data: bytes | str, exclude: str | None = None) -> int:
        return _read_delivered(*self._request("POST", "", _data(data), path=_group_path(group, exclude=exclude)))

    def presence(self, group: str, limit: int = 100, next_token: str | None = None) -> dict[str, Any]:
        path = _group_path(group, limit=str(limit), nextToken=next_token)
        return _read_object(*self._request("GET", "", path=path))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


class AsyncHttpPusher:
    """asyncio, pooled keep-alive connections (aiohttp)."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self._session: Any = None

    async def _request(self, method: str, connection_id: str, body: bytes | None = None,
                       path: str | None = None) -> tuple[int, bytes]:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        url = self.endpoint + (path or f"/@connections/{quote(connection_id, safe='')}")
        try:
            async with self._session.request(method, url, data=body) as response:
                return int(response.status), bytes(await response.read())
        except TimeoutError as exc:
            raise PushError(504, f"no answer from {self.endpoint} within {self.timeout}s") from exc
        except aiohttp.ClientError as exc:
            raise PushError(503, f"node unreachable at {self.endpoint}: {exc!r}") from exc

    async def post(self, connection_id: str, data: bytes | str) -> bool:
        return _expect(*await self._request("POST", connection_id, _data(data)), ok=200)

    async def get(self, connection_id: str) -> dict[str, Any] | None:
        return _read_connection(*await self._request("GET", connection_id))

    async def delete(self, connection_id: str) -> bool:
        return _expect(*await self._request("DELETE", connection_id), ok=204)

    async def join(self, group: str, connection_id: str, since: int | None = None) -> dict[str, Any] | None:
        return _read_connection(*await self._request("PUT", "", path=_member_path(group, connection_id, since)))

    async def leave(self, group: str, connection_id: str) -> bool | None:
        return _read_left(*await self._request("DELETE", "", path=_member_path(group, connection_id, None)))

    async def publish(self, group: str, data: bytes | str, exclude: str | None = None) -> int:
        return _read_delivered(*await self._request("POST", "", _data(data), path=_group_path(group, exclude=exclude)))

    async def presence(self, group: str, limit: int = 100, next_token: str | None = None) -> dict[str, Any]:
        path = _group_path(group, limit=str(limit), nextToken=next_token)
        return _read_object(*await self._request("GET", "", path=path))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncHttpPusher:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


# ----- Redis --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _push_errors() -> Iterator[None]:
    """Redis or the owning node unreachable → PushError 503, no answer in time → 504."""
    try:
        yield
    except RegistryUnavailable as exc:
        raise PushError(504 if isinstance(exc, OwnerTimeout) else 503, str(exc)) from exc


class AsyncRedisPusher:
    """Publishes straight to the owning node's channel and waits for its answer (the nodes' own protocol,
    redis_rpc, on the calling side only: a pusher holds no connections)."""

    def __init__(self, redis_url: str) -> None:
        self.options = RedisOptions.from_url(redis_url)
        self.keys = Keys(self.options.key_prefix)
        self.channel = self.keys.channel(f"pusher-{new_id()}")
        self._link: RedisLink | None = None
        self._rpc: Rpc | None = None
        self._starting: asyncio.Lock | None = None

    async def _ready(self) -> Rpc:
        if self._rpc is not None:
            return self._rpc
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._rpc is None:
                # Published only once the link is up: callers arriving meanwhile wait on the lock instead of
                # finding a half-started link and answering 503 (seen with 64 concurrent first pushes).
                link = RedisLink(self.options.url, self.channel)
                rpc = Rpc(link, Store(link, self.keys), self.channel, self.options.push_timeout,
                          self.options.node_ttl)
                self._link = link
                await link.start()
                self._rpc = rpc
        assert self._rpc is not None
        return self._rpc

    async def post(self, connection_id: str, data: bytes | str) -> bool:
        rpc = await self._ready()
        with _push_errors():
            return await rpc.deliver(connection_id, _data(data))

    async def get(self, connection_id: str) -> dict[str, Any] | None:
        """The connection hash as its node reports it (node, connectedAt, lastActiveAt, sourceIp, ...)."""
        rpc = await self._ready()
        with _push_errors():
            return await rpc.lookup(connection_id)

    async def delete(self, connection_id: str) -> bool:
        rpc = await self._ready()
        with _push_errors():
            return await rpc.disconnect(connection_id)

    async def join(self, group: str, connection_id: str, since: int | None = None) -> dict[str, Any] | None:
        """The connection's node joins it (and replays history after `since`)."""
        rpc = await self._ready()
        with _push_errors():
            return await rpc.join(group, connection_id, since)

    async def leave(self, group: str, connection_id: str) -> bool | None:
        rpc = await self._ready()
        with _push_errors():
            return await rpc.leave(group, connection_id)

    async def publish(self, group: str, data: bytes | str, exclude: str | None = None) -> int:
        """A node publishes it for us (it knows the group's history and envelope settings): one holding members
        of the group, else any live node (so a group with history keeps it even while nobody is in it)."""
        rpc = await self._ready()
        with _push_errors():
            return await rpc.publish_via_node(group, _data(data), exclude)

    async def presence(self, group: str, limit: int = 100, next_token: str | None = None) -> dict[str, Any]:
        rpc = await self._ready()
        with _push_errors():
            page = await rpc.store.members(group, limit, next_token)
        body: dict[str, Any] = {"count": page.count, "members": [
            {"connectionId": m.connection_id, "principalId": m.principal_id, "connectedAt": iso8601(m.connected_at_ms)}
            for m in page.members]}
        if page.next_token is not None:
            body["nextToken"] = page.next_token
        return body

    async def close(self) -> None:
        if self._link is not None:
            await self._link.stop()
        self._link = self._rpc = None

    async def __aenter__(self) -> AsyncRedisPusher:
        await self._ready()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


class RedisPusher:
    """The blocking face of AsyncRedisPusher: its own event loop in a daemon thread; safe to share across threads."""

    def __init__(self, redis_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wsgw-redis-pusher", daemon=True)
        self._thread.start()
        self._pusher = AsyncRedisPusher(redis_url)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()

    def post(self, connection_id: str, data: bytes | str) -> bool:
        return self._run(self._pusher.post(connection_id, data))

    def get(self, connection_id: str) -> dict[str, Any] | None:
        return self._run(self._pusher.get(connection_id))

    def delete(self, connection_id: str) -> bool:
        return self._run(self._pusher.delete(connection_id))

    def join(self, group: str, connection_id: str, since: int | None = None) -> dict[str, Any] | None:
        return self._run(self._pusher.join(group, connection_id, since))

    def leave(self, group: str, connection_id: str) -> bool | None:
        return self._run(self._pusher.leave(group, connection_id))

    def publish(self, group: str, data: bytes | str, exclude: str | None = None) -> int:
        return self._run(self._pusher.publish(group, data, exclude))

    def presence(self, group: str, limit: int = 100, next_token: str | None = None) -> dict[str, Any]:
        return self._run(self._pusher.presence(group, limit, next_token))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._pusher.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> RedisPusher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
