"""A site with several stages answers its site-wide management paths (/metrics, /@reload) only to the
networks in management.allowFrom, as one API's router does."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.stage_apps import write_site, write_version
from tests.test_stages import serve_site


def two_stage_site(tmp_path: Path, **management: object) -> Path:
    extra = {"management": management} if management else {}
    v1 = write_version(tmp_path, "v1", tmp_path / "calls.log", **extra)
    return write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1},
                                               "stages": {"prod": {"version": "v1"}, "beta": {"version": "v1"}}})


async def test_site_metrics_and_reload_are_refused_outside_management_allow_from(tmp_path: Path) -> None:
    site = two_stage_site(tmp_path, allowFrom=["10.0.0.0/8"])          # loopback is not in it
    async with serve_site(site) as server, aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{server.port}/metrics") as reply:
            body = await reply.text()
            assert reply.status == 403
            assert reply.headers["x-amzn-ErrorType"].startswith("ForbiddenException")
            assert "/metrics is not allowed" in json.loads(body)["message"]
            assert "wsgw_messages_received_total" not in body
        async with http.post(f"http://127.0.0.1:{server.port}/@reload") as reply:
            assert reply.status == 403
            assert "reload is not allowed" in json.loads(await reply.text())["message"]
        async with http.get(f"http://127.0.0.1:{server.port}/beta/info") as reply:    # the API itself still answers
            assert reply.status == 200


async def test_site_metrics_answer_inside_management_allow_from(tmp_path: Path) -> None:
    site = two_stage_site(tmp_path)                                     # the default: loopback may manage
    async with serve_site(site) as server, aiohttp.ClientSession() as http:
        reply = await http.get(f"http://127.0.0.1:{server.port}/metrics")
        assert reply.status == 200
        assert 'stage="prod"' in await reply.text()
