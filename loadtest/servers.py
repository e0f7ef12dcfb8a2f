"""Baseline servers the suite compares wsgw with, each run as its own process (`python -m loadtest.servers KIND`).

websockets-echo: the bare `websockets` asyncio server wsgw is built on; echoes every message, and a message
starting with `B` is sent to every open connection with `websockets.broadcast` (the broadcast baseline).
picows-echo: a picows (C-accelerated) echo server — the ceiling of the Python stack.
`--drop-every K` / `--error-every K` drop or answer with an error frame every message whose id % K == K-1:
the tests use them to prove that loss and errors are counted, never averaged away.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from loadtest.payload import ERROR_FRAME, message_id


def _fault(data: bytes, drop_every: int, error_every: int) -> str | None:
    """'drop', 'error' or None for one message, decided by its id."""
    if not (drop_every or error_every):
        return None
    ident = message_id(data)
    if ident is None:
        return None
    if drop_every and ident % drop_every == drop_every - 1:
        return "drop"
    if error_every and ident % error_every == error_every - 1:
        return "error"
    return None


async def websockets_echo(args: argparse.Namespace) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            async for message in ws:
                raw = message.encode() if isinstance(message, str) else message
                if raw[:1] == b"B":
                    broadcast(clients, message[1:])
                    continue
                fault = _fault(raw, args.drop_every, args.error_every)
                if fault == "drop":
                    continue
                await ws.send(ERROR_FRAME if fault == "error" else message)
        except Exception:  # a client that vanished mid-send is not the server's failure
            pass
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=30,
                     backlog=4096) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"WebSocket: ws://127.0.0.1:{port}/", flush=True)
        await _until_signal()


async def picows_echo(args: argparse.Namespace) -> None:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

    drop_every, error_every = args.drop_every, args.error_every

    class Echo(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
                payload = frame.get_payload_as_bytes()
                fault = _fault(payload, drop_every, error_every)
                if fault == "drop":
                    return
                transport.send(frame.msg_type, ERROR_FRAME.encode() if fault == "error" else payload)
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    def factory(_request: WSUpgradeRequest) -> Any:
        return Echo()

    server = await ws_create_server(factory, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"WebSocket: ws://127.0.0.1:{port}/", flush=True)
    try:
        await _until_signal()
    finally:
        server.close()


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


KINDS = {"websockets-echo": websockets_echo, "picows-echo": picows_echo}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.servers")
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--drop-every", type=int, default=0)
    parser.add_argument("--error-every", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(KINDS[args.kind](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
