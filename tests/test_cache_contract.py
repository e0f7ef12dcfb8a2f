"""The response cache contract, one suite for every store (memory; Redis on a real redis-server): what the REST
front may rely on whichever store keeps a stage's answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from tests.helpers import eventually
from tests.redis_fixture import RedisServer
from wsgw.cache import CACHE_STORES, CachedResponse, CacheNamespace, CacheUnavailable, ResponseCache

Factory = Callable[[CacheNamespace], ResponseCache]


@pytest.fixture(params=sorted(CACHE_STORES))
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Each store in turn; every store made is closed at the end."""
    url = str(request.getfixturevalue("redis_url")) if request.param == "redis" else None
    made: list[ResponseCache] = []

    def factory(namespace: CacheNamespace) -> ResponseCache:
        store = CACHE_STORES[request.param].open(namespace, max_bytes=1 << 20, redis_url=url)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.close()


def answer(text: str, status: int = 200) -> CachedResponse:
    return CachedResponse(status, (("content-type", "application/json"), ("x-a", "1"), ("x-a", "2")), text.encode())


async def test_a_kept_answer_comes_back_whole(make: Factory) -> None:
    cache = make(CacheNamespace("api", "dev", "v1"))
    assert await cache.get("k") is None
    value = CachedResponse(203, (("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")), b"\x00\x01\xffbytes")
    await cache.put("k", value, 60)
    assert await cache.get("k") == value


async def test_an_entry_expires_after_its_ttl(make: Factory) -> None:
    cache = make(CacheNamespace("api", "dev", "v1"))
    await cache.put("short", answer("s"), 0.3)
    await cache.put("long", answer("l"), 60)
    assert await cache.get("short") is not None
    await eventually(lambda: cache.get("short"), lambda found: found is None, timeout=5)
    assert await cache.get("long") is not None


async def test_a_zero_ttl_keeps_nothing(make: Factory) -> None:
    cache = make(CacheNamespace("api", "dev", "v1"))
    await cache.put("k", answer("x"), 0)
    assert await cache.get("k") is None


async def test_delete_forgets_one_entry(make: Factory) -> None:
    cache = make(CacheNamespace("api", "dev", "v1"))
    await cache.put("a", answer("a"), 60)
    await cache.put("b", answer("b"), 60)
    await cache.delete("a")
    await cache.delete("never-kept")
    assert await cache.get("a") is None and await cache.get("b") == answer("b")


async def test_apis_stages_and_versions_never_see_each_others_entries(make: Factory) -> None:
    names = [CacheNamespace("api", "dev", "v1"), CacheNamespace("api", "dev", "v2"),
             CacheNamespace("api", "prod", "v1"), CacheNamespace("other", "dev", "v1")]
    caches = [make(ns) for ns in names]
    for i, cache in enumerate(caches):
        await cache.put("same-key", answer(str(i)), 60)
    for i, cache in enumerate(caches):
        assert await cache.get("same-key") == answer(str(i))


async def test_a_stage_flush_removes_that_stage_only(make: Factory) -> None:
    dev = make(CacheNamespace("api", "dev", "v1"))
    prod = make(CacheNamespace("api", "prod", "v1"))
    for i in range(25):
        await dev.put(f"k{i}", answer(str(i)), 60)
    await prod.put("k0", answer("p"), 60)
    assert await dev.flush_stage() == 25
    assert await dev.get("k0") is None and await prod.get("k0") == answer("p")
    assert await dev.flush_stage() == 0


async def test_concurrent_puts_and_gets_stay_consistent(make: Factory) -> None:
    cache = make(CacheNamespace("api", "dev", "v1"))
    await asyncio.gather(*(cache.put(f"k{i}", answer(str(i)), 60) for i in range(50)))
    found = await asyncio.gather(*(cache.get(f"k{i}") for i in range(50)))
    assert found == [answer(str(i)) for i in range(50)]


async def test_flushing_one_version_of_a_stage_reaches_every_version_on_redis(redis_url: str) -> None:
    """AWS flushes a stage's cache; on Redis (shared by nodes) one flush removes every version's entries."""
    v1 = CACHE_STORES["redis"].open(CacheNamespace("api", "dev", "v1"), max_bytes=0, redis_url=redis_url)
    v2 = CACHE_STORES["redis"].open(CacheNamespace("api", "dev", "v2"), max_bytes=0, redis_url=redis_url)
    try:
        await v1.put("k", answer("1"), 60)
        await v2.put("k", answer("2"), 60)
        assert await v1.flush_stage() == 2
        assert await v2.get("k") is None
    finally:
        await v1.close()
        await v2.close()


async def test_redis_store_answers_unavailable_when_redis_is_gone_and_recovers(redis_server: RedisServer) -> None:
    store = CACHE_STORES["redis"].open(CacheNamespace("api", "dev", "v1"), max_bytes=0, redis_url=redis_server.url)
    try:
        await store.put("k", answer("x"), 60)
        redis_server.stop()
        with pytest.raises(CacheUnavailable):
            await store.get("k")
        with pytest.raises(CacheUnavailable):          # at once, while the retry pause lasts
            await store.put("k", answer("y"), 60)
        redis_server.start()

        async def put_get() -> CachedResponse | None:
            try:
                await store.put("k2", answer("z"), 60)
                return await store.get("k2")
            except CacheUnavailable:
                return None

        assert await eventually(put_get, lambda found: found == answer("z"), timeout=10) == answer("z")
    finally:
        await store.close()


async def test_the_redis_lock_is_held_by_one_store_and_given_back_only_by_it(redis_url: str) -> None:
    """Nodes sharing Redis fill a key once: one store's lock keeps the others out until it is given back."""
    ns = CacheNamespace("api", "dev", "v1")
    first = CACHE_STORES["redis"].open(ns, max_bytes=0, redis_url=redis_url)
    second = CACHE_STORES["redis"].open(ns, max_bytes=0, redis_url=redis_url)
    try:
        assert await first.try_lock("k", 30) and not await second.try_lock("k", 30)
        assert await second.locked("k")
        await second.unlock("k")                       # not its lock: nothing happens
        assert await first.locked("k")
        await first.unlock("k")
        assert not await second.locked("k") and await second.try_lock("k", 0.2)
        await eventually(lambda: first.locked("k"), lambda held: not held, timeout=5)   # a lock lapses
    finally:
        await first.close()
        await second.close()
