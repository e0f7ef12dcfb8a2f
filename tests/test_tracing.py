"""Tracing (the otel extra): spans for connect, message, integration call and push; traceparent and
X-Amzn-Trace-Id reach an HTTP integration; without the packages, `tracing:` is a config error."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import aiohttp
from aiohttp import web
from websockets.asyncio.client import connect

from tests.helpers import ROOT, open_client, serve


async def test_spans_cover_connect_message_call_and_push_and_http_backends_get_the_trace() -> None:
    seen: list[dict[str, str]] = []

    async def backend(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text='{"ok": true}')

    app = web.Application()
    app.router.add_post("/hook", backend)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api: dict[str, Any] = {
        "routes": {"$default": {"handler": "testapp:ok"},
                   "hook": {"integration": {"type": "http_proxy", "uri": f"http://127.0.0.1:{port}/hook"},
                            "routeResponse": True}},
        "tracing": {"exporter": "memory"},
    }
    try:
        async with serve(api) as server, aiohttp.ClientSession() as session:
            ws, cid = await open_client(server)
            await ws.send('{"action": "hook"}')
            assert json.loads(await ws.recv()) == {"ok": True}
            async with session.post(f"http://127.0.0.1:{server.port}/dev/@connections/{cid}", data=b"x") as r:
                assert r.status == 200
            await ws.close()
            assert server.tracing is not None and server.tracing.exported is not None
            spans = server.tracing.exported.get_finished_spans()
    finally:
        await runner.cleanup()
    names = [span.name for span in spans]
    assert {"websocket.connect", "websocket.message", "integration.call", "websocket.push"} <= set(names)
    message = next(s for s in spans if s.name == "websocket.message")
    call = next(s for s in spans if s.name == "integration.call" and s.attributes
                and s.attributes.get("wsgw.route_key") == "hook")
    assert call.parent is not None and call.parent.span_id == message.context.span_id
    (headers,) = seen
    trace_id = f"{call.context.trace_id:032x}"
    assert headers["traceparent"].startswith(f"00-{trace_id}-{call.context.span_id:016x}-")
    assert headers["X-Amzn-Trace-Id"].startswith(f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent=")


def test_tracing_without_the_opentelemetry_packages_is_a_config_error_naming_the_extra() -> None:
    script = ("import sys; sys.modules['opentelemetry'] = None\n"
              "from wsgw.config import parse_api\n"
              "from wsgw.errors import ConfigError\n"
              "from pathlib import Path\n"
              "try:\n"
              "    parse_api({'routes': {'$default': {'integration': {'type': 'mock'}}}, 'tracing': True}, Path('.'))\n"
              "except ConfigError as exc:\n"
              "    print(exc.problems[0])\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "tracing" in out.stdout and "wsgw[otel]" in out.stdout


async def test_without_tracing_nothing_is_wrapped() -> None:
    async with serve({"routes": {"$default": {"handler": "testapp:ok"}}}) as server:
        assert server.tracing is None
        async with connect(server.urls.websocket) as ws:
            await ws.send("{}")
