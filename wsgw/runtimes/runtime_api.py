"""AWS Lambda's Runtime API (version 2018-06-01) on loopback, as runtime interface clients poll it.

One `RuntimeApi` serves a node; each execution environment gets its own `Endpoint`, a listening port of its
own (the value of its `AWS_LAMBDA_RUNTIME_API`), so a request always tells which environment sent it and a
crashed process's invocation is known without guessing. Routes (docs/lambda-runtime-api.md):

- `GET  /2018-06-01/runtime/invocation/next`: long-poll; the event as body, the invocation in headers.
- `POST /2018-06-01/runtime/invocation/{requestId}/response`: the result (at most 6 MB, else 413).
- `POST /2018-06-01/runtime/invocation/{requestId}/error`: `{errorMessage, errorType, stackTrace}`.
- `POST /2018-06-01/runtime/init/error`: the runtime could not start.

Bad input gets the emulator's JSON error answers (400 `InvalidRequestID`, 403 `InvalidStateTransition`,
413 `RequestEntityTooLarge`, 404/405) and never reaches an invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import orjson
from aiohttp import web

from wsgw.runtimes.invocation import MAX_PAYLOAD_BYTES, FunctionError, InitError, Invocation

__all__ = ["Endpoint", "RuntimeApi"]

log = logging.getLogger("wsgw.runtimes")

PREFIX = "/2018-06-01/runtime"
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_ACCEPTED = orjson.dumps({"status": "OK"})


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"errorType": error_type, "errorMessage": message}),
                        content_type="application/json")


class Endpoint:
    """The Runtime API as one execution environment sees it: one invocation at a time, handed out on `/next`."""

    def __init__(self, api: RuntimeApi, sock: socket.socket, site: web.SockSite) -> None:
        self._api = api
        self._sock = sock
        self._site = site
        self.port: int = sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.ready = asyncio.Event()                # the runtime asked for work: its init phase is over
        self.init_error: InitError | None = None
        self.init_failed = asyncio.Event()
        self.current: Invocation | None = None      # handed out, not yet answered
        self._queue: asyncio.Queue[Invocation] = asyncio.Queue()
        self.closed = False

    def submit(self, invocation: Invocation) -> None:
        """Queue `invocation` for the runtime's next `/next`."""
        self._queue.put_nowait(invocation)

    async def _next(self) -> Invocation:
        self.ready.set()
        invocation = await self._queue.get()
        self.current = invocation
        return invocation

    def drop_queued(self, outcome: BaseException) -> None:
        """Answer the invocations the runtime never took (it exited or is being stopped)."""
        while not self._queue.empty():
            self._queue.get_nowait().settle(outcome)

    def _held(self, request_id: str) -> Invocation | None:
        current = self.current
        if current is None or current.request_id != request_id or current.result.done():
            return None
        return current

    async def close(self) -> None:
        """Stop listening; a `/next` still waiting gets its connection closed."""
        if self.closed:
            return
        self.closed = True
        self._api._endpoints.pop(self.port, None)
        await self._site.stop()
        self._sock.close()


class RuntimeApi:
    """The aiohttp application behind every endpoint of a node; `open_endpoint()` adds one port."""

    def __init__(self, max_payload: int = MAX_PAYLOAD_BYTES) -> None:
        self.max_payload = max_payload
        self._endpoints: dict[int, Endpoint] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=self.max_payload + 1)
        app.router.add_get(PREFIX + "/invocation/next", self._on_next)
        app.router.add_post(PREFIX + "/invocation/{request_id}/response", self._on_response)
        app.router.add_post(PREFIX + "/invocation/{request_id}/error", self._on_error)
        app.router.add_post(PREFIX + "/init/error", self._on_init_error)
        # handler_cancellation: a `/next` whose runtime hung up stops waiting instead of taking an event.
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=0.1)
        await self._runner.setup()

    async def open_endpoint(self) -> Endpoint:
        """A new port on 127.0.0.1 for one execution environment."""
        if self._runner is None:
            await self.start()
        assert self._runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        site = web.SockSite(self._runner, sock)
        endpoint = Endpoint(self, sock, site)
        self._endpoints[endpoint.port] = endpoint
        await site.start()
        return endpoint

    async def close(self) -> None:
        for endpoint in list(self._endpoints.values()):
            await endpoint.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ---------------------------------------------------------------------------------------

    def _endpoint(self, request: web.Request) -> Endpoint | None:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return self._endpoints.get(sockname[1]) if sockname else None

    async def _body(self, request: web.Request) -> bytes | web.Response:
        """The request body, or the 413 answer once it passes the payload limit (checked before reading it all)."""
        too_large = _error(413, "RequestEntityTooLarge",
                           f"Exceeded maximum allowed payload size ({self.max_payload} bytes).")
        if request.content_length is not None and request.content_length > self.max_payload:
            return too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > self.max_payload:
                return too_large
            chunks.append(chunk)
        return b"".join(chunks)

    async def _on_next(self, request: web.Request) -> web.StreamResponse:
        endpoint = self._endpoint(request)
        if endpoint is None:
            return _error(404, "UnknownEndpoint", "This port serves no execution environment.")
        if endpoint.current is not None and not endpoint.current.result.done():
            # Asking for more work means the runtime dropped the invocation it held: answer it rather than hang.
            endpoint.current.settle(FunctionError("Runtime.InvalidResponse",
                                                  "The runtime asked for the next invocation without answering."))
        invocation = await endpoint._next()
        return web.Response(body=invocation.payload, headers=invocation.headers())

    async def _on_response(self, request: web.Request) -> web.StreamResponse:
        endpoint = self._endpoint(request)
        invocation = endpoint._held(request.match_info["request_id"]) if endpoint is not None else None
        if invocation is None:
            return _error(400, "InvalidRequestID", "Invalid request ID")
        body = await self._body(request)
        if isinstance(body, web.Response):
            invocation.settle(FunctionError(
                "Function.ResponseSizeTooLarge",
                f"Response payload size exceeded maximum allowed payload size ({self.max_payload} bytes)."))
            return body
        invocation.settle(body)
        return web.Response(status=202, body=_ACCEPTED, content_type="application/json")

    async def _on_error(self, request: web.Request) -> web.StreamResponse:
        endpoint = self._endpoint(request)
        invocation = endpoint._held(request.match_info["request_id"]) if endpoint is not None else None
        if invocation is None:
            return _error(400, "InvalidRequestID", "Invalid request ID")
        body = await self._body(request)
        if isinstance(body, web.Response):
            invocation.settle(FunctionError("Function.ResponseSizeTooLarge",
                                            f"Error payload exceeded {self.max_payload} bytes."))
            return body
        invocation.settle(_reported_error(FunctionError, body, request.headers.get(_ERROR_TYPE_HEADER)))
        return web.Response(status=202, body=_ACCEPTED, content_type="application/json")

    async def _on_init_error(self, request: web.Request) -> web.StreamResponse:
        endpoint = self._endpoint(request)
        if endpoint is None:
            return _error(404, "UnknownEndpoint", "This port serves no execution environment.")
        if endpoint.ready.is_set() or endpoint.init_error is not None:
            return _error(403, "InvalidStateTransition", "The runtime is past its init phase.")
        body = await self._body(request)
        if isinstance(body, web.Response):
            body = b""
        error = _reported_error(InitError, body, request.headers.get(_ERROR_TYPE_HEADER))
        assert isinstance(error, InitError)
        endpoint.init_error = error
        endpoint.init_failed.set()
        log.warning("runtime init error on %s: %s", endpoint.address, error)
        return web.Response(status=202, body=_ACCEPTED, content_type="application/json")


def _reported_error(kind: type[FunctionError], body: bytes, header_type: str | None) -> FunctionError:
    """What a runtime posted as an error; the header's type stands in when the body is missing or unreadable."""
    parsed: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        parsed = orjson.loads(body) if body else None
    if isinstance(parsed, dict):
        error_type = parsed.get("errorType")
        message = parsed.get("errorMessage")
        trace = parsed.get("stackTrace", parsed.get("trace"))
        return kind(str(error_type) if error_type is not None else (header_type or "Unhandled"),
                    str(message) if message is not None else "",
                    [str(line) for line in trace] if isinstance(trace, list) else None,
                    body=parsed)
    error_type = header_type or "Unhandled"
    return kind(error_type, body.decode("utf-8", "replace") if body else "")
