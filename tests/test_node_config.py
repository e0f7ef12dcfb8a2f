"""NodeConfig: one frozen value for how a node runs; its tuning defaults are the figures the modules use."""

from __future__ import annotations

import dataclasses

import pytest

from wsgw.config import Limits
from wsgw.config.node import NodeConfig
from wsgw.errors import ConfigError
from wsgw.gateway import deadlines, inbox
from wsgw.registry import redis_link
from wsgw.rest import front
from wsgw.server import listener, websocket
from wsgw.server.budgets import Budgets


def test_tuning_defaults_match_the_module_constants_still_read_directly() -> None:
    node = NodeConfig()
    budgets = Budgets()                      # the protocols' bounds come from here (built from both configs)
    assert (node.listener.max_head_bytes, node.listener.max_url_bytes,
            node.listener.max_queued_bytes, node.listener.max_early_bytes, node.listener.keepalive_seconds,
            node.listener.close_handshake_seconds) == (
        budgets.head_bytes, budgets.url_bytes, budgets.pipelined_bytes,
        budgets.early_bytes, listener.KEEPALIVE_SECONDS, websocket.CLOSE_HANDSHAKE_SECONDS)
    assert Budgets.from_limits(Limits(), node.listener) == budgets
    assert (node.gateway.inbox_high_water, node.gateway.inbox_low_water, node.gateway.watchdog_seconds) == (
        inbox.INBOX_HIGH_WATER, inbox.INBOX_LOW_WATER, deadlines.WATCHDOG_SECONDS)
    assert (node.redis.command_timeout, node.redis.connect_timeout, node.redis.retry_seconds) == (
        redis_link.COMMAND_TIMEOUT, redis_link.CONNECT_TIMEOUT, redis_link.RETRY_SECONDS)
    assert node.rest.max_request_head_bytes == front.MAX_REQUEST_HEAD_BYTES


def test_node_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NodeConfig().port = 1  # type: ignore[misc]


@pytest.mark.parametrize(("settings", "line"), [
    ({"workers": 0}, "--workers: must be 1 or more"),
    ({"workers": 2}, "--workers: several processes need the Redis registry; add --redis redis://HOST:PORT/0"),
    ({"port": 70000}, "--port: 70000 is not a TCP port (0 picks a free one)"),
    ({"ws_engine": "tornado"}, "--ws-engine: 'tornado' is not a WebSocket engine; use one of websockets, picows"),
    ({"planned_connections": 0}, "--planned-connections: must be 1 or more"),
])
def test_bad_node_settings_name_the_flag(settings: dict[str, int | str], line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        NodeConfig(**settings)  # type: ignore[arg-type]
    assert [str(p) for p in caught.value.problems] == [line]


def test_every_engine_name_has_its_class() -> None:
    from wsgw.config.node import DEFAULT_WS_ENGINE, WS_ENGINES
    from wsgw.server.engines import ENGINES

    assert set(ENGINES) == set(WS_ENGINES) and DEFAULT_WS_ENGINE in ENGINES
