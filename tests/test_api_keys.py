"""API keys and usage plans on REST routes and $connect: AWS's 403 and 429 bodies, a quota spent across two
nodes and kept across a restart (Redis), keys compared by digest and never logged."""

from __future__ import annotations

import calendar
import datetime
import logging
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import api_from, serve
from wsgw.errors import ConfigError
from wsgw.gateway.usage import period_end

MOBILE = "mobile-key-0123456789abcdef"
PARTNER = "partner-key-0123456789abcdef"


def keyed_api(quota: int = 1000, rate: float = 1000, burst: int = 1000, **extra: Any) -> dict[str, Any]:
    return {
        "apiKeys": {"mobile": {"value": MOBILE, "usagePlan": "basic"}, "partner": {"value": PARTNER}},
        "usagePlans": {"basic": {"throttle": {"rateLimit": rate, "burstLimit": burst},
                                 "quota": {"limit": quota, "period": "DAY"}}},
        "routes": {"$connect": {"handler": "testapp:ok", "apiKeyRequired": True},
                   "$default": {"handler": "testapp:echo"}},
        "http": {"routes": {"GET /items": {"handler": "restapp:show", "apiKeyRequired": True},
                            "GET /open": {"handler": "restapp:show"}}},
        **extra,
    }


def base_of(server: Any) -> str:
    return server.urls.websocket.replace("ws://", "http://")


async def get(session: aiohttp.ClientSession, url: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"x-api-key": key} if key is not None else {}
    async with session.get(url, headers=headers) as response:
        return response.status, await response.json()


async def connect_status(url: str, key: str | None) -> int:
    headers = {"x-api-key": key} if key is not None else {}
    try:
        async with connect(url, additional_headers=headers):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_rest_route_needs_a_known_key_with_aws_forbidden_body() -> None:
    async with serve(keyed_api()) as server, aiohttp.ClientSession() as session:
        base = base_of(server)
        assert await get(session, f"{base}/items") == (403, {"message": "Forbidden"})
        assert await get(session, f"{base}/items", "mobile-key-0123456789abcdeX") == (403, {"message": "Forbidden"})
        assert (await get(session, f"{base}/items", MOBILE))[0] == 200
        assert (await get(session, f"{base}/items", PARTNER))[0] == 200      # a key without a plan
        assert (await get(session, f"{base}/open"))[0] == 200


async def test_connect_needs_a_key_too() -> None:
    async with serve(keyed_api()) as server:
        assert await connect_status(server.urls.websocket, None) == 403
        assert await connect_status(server.urls.websocket, "nope") == 403
        assert await connect_status(server.urls.websocket, MOBILE) == 101


async def test_another_header_by_api_key_selection_expression() -> None:
    async with serve(keyed_api(apiKeySelectionExpression="$request.header.X-Key")) as server:
        assert await connect_status(server.urls.websocket, MOBILE) == 403
        async with connect(server.urls.websocket, additional_headers={"X-Key": MOBILE}):
            pass


async def test_plan_throttle_is_429_too_many_requests() -> None:
    async with serve(keyed_api(rate=0.001, burst=2)) as server, aiohttp.ClientSession() as session:
        base = base_of(server)
        statuses = [await get(session, f"{base}/items", MOBILE) for _ in range(3)]
        assert [s for s, _ in statuses] == [200, 200, 429]
        assert statuses[2][1] == {"message": "Too Many Requests"}
        assert (await get(session, f"{base}/items", PARTNER))[0] == 200


async def test_quota_spent_is_429_limit_exceeded() -> None:
    async with serve(keyed_api(quota=2)) as server, aiohttp.ClientSession() as session:
        base = base_of(server)
        assert [(await get(session, f"{base}/items", MOBILE))[0] for _ in range(2)] == [200, 200]
        assert await get(session, f"{base}/items", MOBILE) == (429, {"message": "Limit Exceeded"})
        assert await connect_status(server.urls.websocket, MOBILE) == 429


async def test_quota_is_counted_across_two_nodes_and_kept_across_a_restart(redis_url: str) -> None:
    raw = keyed_api(quota=4)
    async with serve(raw, redis_url=redis_url) as one, serve(raw, redis_url=redis_url) as two, \
            aiohttp.ClientSession() as session:
        assert (await get(session, f"{base_of(one)}/items", MOBILE))[0] == 200
        assert (await get(session, f"{base_of(two)}/items", MOBILE))[0] == 200
        assert await connect_status(one.urls.websocket, MOBILE) == 101
    async with serve(raw, redis_url=redis_url) as again, aiohttp.ClientSession() as session:
        assert (await get(session, f"{base_of(again)}/items", MOBILE))[0] == 200     # the 4th
        assert await get(session, f"{base_of(again)}/items", MOBILE) == (429, {"message": "Limit Exceeded"})


async def test_key_values_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(keyed_api(quota=1)) as server, aiohttp.ClientSession() as session:
        for key in (MOBILE, MOBILE, "guess-0123456789abcdefghij"):
            await get(session, f"{base_of(server)}/items", key)
    assert "mobile" in caplog.text
    assert MOBILE not in caplog.text and "guess-0123456789" not in caplog.text


def test_quota_periods_end_at_utc_boundaries() -> None:
    at = calendar.timegm(datetime.datetime(2024, 12, 31, 15, 0).timetuple())     # a Tuesday
    assert period_end("DAY", at) == calendar.timegm(datetime.datetime(2025, 1, 1).timetuple())
    assert period_end("WEEK", at) == calendar.timegm(datetime.datetime(2025, 1, 6).timetuple())
    assert period_end("MONTH", at) == calendar.timegm(datetime.datetime(2025, 1, 1).timetuple())


def test_config_problems_name_their_keys() -> None:
    raw = keyed_api()
    raw["apiKeys"]["short"] = {"value": "too-short", "usagePlan": "gold"}
    raw["usagePlans"]["bad"] = {"quota": {"limit": 5, "period": "YEAR"}}
    with pytest.raises(ConfigError) as caught:
        api_from(raw)
    text = str(caught.value)
    assert "apiKeys.short.value" in text and "apiKeys.short.usagePlan" in text
    assert "usagePlans.bad.quota.period" in text
    with pytest.raises(ConfigError, match=r"routes\.\$default\.apiKeyRequired"):
        api_from({"routes": {"$default": {"handler": "testapp:ok", "apiKeyRequired": True}}})
