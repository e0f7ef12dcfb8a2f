"""Real local HTTP backends for the integration tests: aiohttp.web servers on free ports in the test's loop.

`Backend` serves Lambda-proxy style endpoints (for http_proxy), raw endpoints (for http) and a small
Lambda Invoke-compatible endpoint (`POST /2015-03-31/functions/{name}/invocations`) running Python
functions, for aws_lambda. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict


@dataclass
class Seen:
    path: str
    headers: Mapping[str, str]     # case-insensitive, as HTTP header names are
    body: bytes
    query: str = ""                # the raw query string

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Backend:
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    functions: dict[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)
    redirect_to: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def _record(self, request: web.Request) -> Seen:
        seen = Seen(request.path, CIMultiDict(request.headers), await request.read(), request.query_string)
        self.seen.append(seen)
        return seen

    # ---- http_proxy: the body is an AWS event, the answer a Lambda proxy result
    async def proxy_echo(self, request: web.Request) -> web.Response:
        event = (await self._record(request)).json()
        return web.json_response({"statusCode": 200, "body": event.get("body")})

    async def proxy_slow(self, request: web.Request) -> web.Response:
        event = (await self._record(request)).json()
        await asyncio.sleep(float(json.loads(event["body"]).get("delay", 0)))
        return web.json_response({"statusCode": 200, "body": event.get("body")})

    async def proxy_hang(self, request: web.Request) -> web.Response:
        await self._record(request)
        await self.release.wait()
        return web.json_response({"statusCode": 200, "body": "released"})

    async def proxy_connect(self, request: web.Request) -> web.Response:
        event = (await self._record(request)).json()
        status = int((event.get("queryStringParameters") or {}).get("status", 200))
        return web.json_response({"statusCode": status})

    async def fail(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=500, text="backend exploded: secret detail")

    async def garbage(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=200, text="<html>not json</html>", content_type="text/html")

    async def redirect_away(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPTemporaryRedirect(self.redirect_to)

    async def redirect_here(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPTemporaryRedirect("/proxy/echo")

    # ---- http: raw body in, raw body out
    async def raw_echo(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        return web.Response(body=seen.body, content_type="application/json")

    async def raw_status(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=int(request.match_info["status"]), text="status page")

    # ---- a Lambda Invoke-compatible endpoint
    async def invoke(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        name = unquote(request.match_info["name"]).rsplit(":function:", 1)[-1].split(":")[0]
        function = self.functions.get(name)
        if function is None:
            return web.json_response({"Type": "User", "message": f"Function not found: {name}"}, status=404,
                                     headers={"x-amzn-ErrorType": "ResourceNotFoundException"})
        try:
            result = function(seen.json())
            if asyncio.iscoroutine(result):
                result = await result
        except Exception as exc:
            return web.json_response({"errorMessage": str(exc), "errorType": type(exc).__name__},
                                     headers={"X-Amz-Function-Error": "Unhandled"})
        return web.Response(body=json.dumps(result), content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/proxy/echo", self.proxy_echo)
        app.router.add_post("/proxy/slow", self.proxy_slow)
        app.router.add_post("/proxy/hang", self.proxy_hang)
        app.router.add_post("/proxy/connect", self.proxy_connect)
        app.router.add_post("/proxy/fail", self.fail)
        app.router.add_post("/proxy/garbage", self.garbage)
        app.router.add_post("/proxy/redirect-away", self.redirect_away)
        app.router.add_post("/proxy/redirect-here", self.redirect_here)
        app.router.add_route("*", "/raw/echo", self.raw_echo)
        app.router.add_route("*", "/raw/mapped/{tail:.*}", self.raw_echo)
        app.router.add_post("/raw/status/{status}", self.raw_status)
        app.router.add_post("/2015-03-31/functions/{name}/invocations", self.invoke)
        return app


@asynccontextmanager
async def backend(**kwargs: Any) -> AsyncIterator[Backend]:
    """A Backend listening on a free port of 127.0.0.1 until the block ends."""
    server = Backend(**kwargs)
    runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()
