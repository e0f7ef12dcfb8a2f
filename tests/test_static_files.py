"""The `static` integration: files below a root on a REST route, never anything outside it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import api_from, raw_http, serve
from wsgw.config import IntegrationSpec
from wsgw.config.integrations import StaticOptions
from wsgw.config.node import NodeConfig
from wsgw.errors import ConfigError
from wsgw.integrations.static import StaticIntegration
from wsgw.server.node import build_node


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "app.js").write_text("export const x = 1;")
    (root / "sub" / "index.html").write_text("sub home")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "outside.txt").write_text("outside the root")
    os.symlink(tmp_path / "outside.txt", root / "escape.txt")
    os.symlink(tmp_path, root / "up")
    (root / "inside-link.js").symlink_to(root / "app.js")
    return tmp_path


def api(base: Path) -> dict[str, Any]:
    return {"routes": {"$default": {"integration": {"type": "mock"}}},
            "http": {"routes": {"GET /": {"integration": {"type": "static", "root": "web"}},
                                "GET /{proxy+}": {"integration": {"type": "static", "root": "web"}}}}}


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes, str]:
    async with session.get(url) as response:
        return response.status, await response.read(), response.headers.get("content-type", "")


async def test_files_index_pages_and_types_are_served(site: Path) -> None:
    async with serve(api_from(api(site), site)) as server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}/dev"
        assert await get(session, f"{base}/") == (200, b"<h1>home</h1>", "text/html; charset=utf-8")
        assert (await get(session, f"{base}/app.js"))[2] == "application/javascript; charset=utf-8"
        assert (await get(session, f"{base}/sub"))[1] == b"sub home"      # a folder serves its index.html
        assert (await get(session, f"{base}/logo.png"))[1:] == (b"\x89PNG\r\n\x1a\n\x00\xff", "image/png")
        assert (await get(session, f"{base}/inside-link.js"))[0] == 200       # a link that stays inside
        assert (await get(session, f"{base}/missing.html"))[0] == 404


@pytest.mark.parametrize("path", ["/dev/../outside.txt", "/dev/%2e%2e/outside.txt", "/dev/%2E%2E/outside.txt",
                                  "/dev/sub/..%2f..%2foutside.txt", "/dev/escape.txt", "/dev/up/outside.txt",
                                  "/dev/.env", "/dev/sub%5c..%5c..%5coutside.txt", "/dev/%00"])
async def test_nothing_outside_the_root_or_hidden_is_ever_served(site: Path, path: str) -> None:
    async with serve(api_from(api(site), site)) as server:
        response = await raw_http(server.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    status = int(response.split(b" ", 2)[1])
    assert status in (400, 404), response[:200]
    assert b"outside the root" not in response and b"SECRET" not in response


def test_the_integration_refuses_traversal_by_itself(site: Path) -> None:
    spec = IntegrationSpec("static", StaticOptions("web"), 1000, "http.routes.x.integration")
    static = StaticIntegration.from_spec(spec, api_from(api(site), site), None, "f")  # type: ignore[arg-type]
    for bad in ("../outside.txt", "sub/../../outside.txt", "escape.txt", "up/outside.txt", ".env", "a\x00b",
                "..\\outside.txt", "/../outside.txt"):
        assert static.resolve(bad) is None, bad
    assert static.resolve("sub") == (site / "web" / "sub" / "index.html").resolve()


def test_a_root_that_is_not_a_folder_is_a_config_error(site: Path) -> None:
    raw = api(site)
    raw["http"]["routes"]["GET /"]["integration"]["root"] = "nope"
    with pytest.raises(ConfigError) as caught:
        build_node(api_from(raw, site), NodeConfig(host="127.0.0.1", port=0))
    assert "root" in str(caught.value)
