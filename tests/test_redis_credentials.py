"""A Redis password never shows: not in what `wsgw run` prints, not on a worker's command line (ps)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import aiohttp
import pytest
import redis

from tests.helpers import APPS, ROOT, GatewayProcess, wait_for, write_config
from tests.redis_fixture import RedisServer
from tests.test_redis_nodes import API, Client
from wsgw.cli import _build_parser, _child_args
from wsgw.registry.redis_store import Keys
from wsgw.registry.redis_wire import redacted

SECRET = "s3cr3t-pa55"


@pytest.mark.parametrize(("url", "shown"), [
    (f"redis://app:{SECRET}@10.0.0.5:6379/0", "redis://app:***@10.0.0.5:6379/0"),
    (f"redis://:{SECRET}@10.0.0.5:6379/0?node_ttl=3", "redis://:***@10.0.0.5:6379/0?node_ttl=3"),
    (f"rediss://default:{SECRET}@cache.example:6380", "rediss://default:***@cache.example:6380"),
    (f"unix:///run/redis.sock?password={SECRET}&db=2", "unix:///run/redis.sock?password=***&db=2"),
    ("redis://app@10.0.0.5:6379/0", "redis://app@10.0.0.5:6379/0"),
    ("redis://127.0.0.1:6379/0?key_prefix=x", "redis://127.0.0.1:6379/0?key_prefix=x"),
])
def test_redacted_hides_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_worker_command_line_carries_no_redis_url(tmp_path: Path) -> None:
    args = _build_parser().parse_args(["run", "-c", "api.yaml", "--redis", f"redis://:{SECRET}@h:1/0",
                                       "--workers", "2", "--stage", "prod"])
    child = _child_args(args)
    assert "--redis" not in child and not any(SECRET in part for part in child)
    assert child[:2] == ["-c", "api.yaml"] and "--stage" in child


def _argv(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


async def test_workers_get_the_redis_url_from_the_environment_and_nothing_prints_the_password(
        tmp_path: Path, redis_server: RedisServer) -> None:
    admin = redis_server.client()
    admin.config_set("requirepass", SECRET)
    admin.close()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    url = f"redis://default:{SECRET}@127.0.0.1:{redis_server.port}/0?key_prefix={prefix}&node_ttl=2"
    store = redis.Redis(port=redis_server.port, password=SECRET)
    keys = Keys(prefix)
    config = write_config(tmp_path / "api.yaml", API)
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{APPS}"}
    with GatewayProcess(config, "--redis", url, "--workers", "2", env=env) as server:
        assert server.proc is not None
        await wait_for(lambda: store.hlen(keys.nodes) == 2, timeout=20)
        workers = _children(server.proc.pid)
        assert len(workers) == 2
        for pid in workers:
            argv = _argv(pid)
            assert b"--redis" not in argv and not any(SECRET.encode() in part for part in argv)
        # the workers still reach each other through Redis
        clients = [await Client.open(server.ws_url) for _ in range(8)]
        async with aiohttp.ClientSession() as session:
            for client in clients:
                async with session.post(f"{server.http_url}/@connections/{client.cid}", data=b"hi") as response:
                    assert response.status == 200
        await wait_for(lambda: all(c.received == ["hi"] for c in clients), timeout=10)
        for client in clients:
            await client.close()
    printed = "".join(server.output)
    assert SECRET not in printed
    assert f"redis (redis://default:***@127.0.0.1:{redis_server.port}/0" in printed
    store.close()
