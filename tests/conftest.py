"""Shared fixtures: the test app's recorded events are cleared before each test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import APPS, ENGINE

if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import testapp

pytest_plugins = ["tests.redis_fixture", "tests.service_fixtures"]   # redis_*, moto_url, nats_server, amqp_url


@pytest.fixture(autouse=True)
def _fresh_testapp() -> Iterator[None]:
    testapp.reset()
    yield
    testapp.RELEASE.set()


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The local development CA and server certificate, made once per session in a temp dir (never ~)."""
    from wsgw.tls.devca import ensure_dev_certificates

    yield ensure_dev_certificates(tmp_path_factory.mktemp("wsgw-ca"))


@pytest.fixture(params=["websockets", "picows"])
def ws_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test once per WebSocket frame engine: every node `serve` starts uses it (tests/helpers.ENGINE)."""
    before = ENGINE["name"]
    ENGINE["name"] = request.param
    yield request.param
    ENGINE["name"] = before
