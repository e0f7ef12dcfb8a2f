"""Shared fixtures: the test app's recorded events are cleared before each test."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.helpers import APPS

if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import testapp

pytest_plugins = ["tests.redis_fixture"]   # redis_url, redis_server, redis_cluster


@pytest.fixture(autouse=True)
def _fresh_testapp() -> Iterator[None]:
    testapp.reset()
    yield
    testapp.RELEASE.set()
