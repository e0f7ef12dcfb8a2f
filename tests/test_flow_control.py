"""FlowControl: the one owner of a socket's reading, paused while any reason holds it (real loopback socket)."""

from __future__ import annotations

import asyncio
from typing import cast

from wsgw.server.flow import FlowControl


async def test_reading_resumes_only_once_every_reason_released_it() -> None:
    accepted: asyncio.Future[asyncio.Transport] = asyncio.get_running_loop().create_future()

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set_result(cast(asyncio.Transport, transport))

    server = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", 0)
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    transport = await asyncio.wait_for(accepted, 5)
    flow = FlowControl(transport)
    try:
        flow.pause("pipeline")
        flow.pause("inbox")
        flow.pause("inbox")                       # the same reason twice holds once
        assert not transport.is_reading() and flow.reasons == {"pipeline", "inbox"}
        flow.resume("inbox")
        assert not transport.is_reading() and flow.paused
        flow.resume("inbox")                      # a reason not held releases nothing
        assert not transport.is_reading()
        flow.resume("pipeline")
        assert transport.is_reading() and not flow.paused
    finally:
        writer.close()
        transport.close()
        server.close()
        await server.wait_closed()
