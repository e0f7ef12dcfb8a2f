"""One port for TLS and plaintext (`--tls both`): peek at each new socket's first byte, then hand it to asyncio.

A TLS ClientHello record starts with 0x16; an HTTP request starts with a method letter. The byte is read with
MSG_PEEK, so nothing is consumed: `loop.connect_accepted_socket` then starts TLS (or not) on the untouched
stream. Works the same on asyncio's loop and uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

log = logging.getLogger("wsgw.server")

TLS_HANDSHAKE_RECORD = 0x16


class DualAcceptor:
    """Accepts on a listening socket and starts each connection with or without TLS by its first byte."""

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol], context: ssl.SSLContext,
                 first_byte_timeout: float = 10.0) -> None:
        self.sock = sock
        self.factory = factory
        self.context = context
        self.first_byte_timeout = first_byte_timeout
        self.waiting: dict[int, tuple[socket.socket, asyncio.TimerHandle]] = {}
        self.tasks: set[asyncio.Task[object]] = set()
        self.accepting: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sock.setblocking(False)
        self.accepting = asyncio.get_running_loop().create_task(self._accept_forever())

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self.sock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:  # EMFILE and friends: back off a little rather than spin
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fd = conn.fileno()
            timer = loop.call_later(self.first_byte_timeout, self._give_up, fd)
            self.waiting[fd] = (conn, timer)
            loop.add_reader(fd, self._readable, fd)

    def _readable(self, fd: int) -> None:
        entry = self.waiting.pop(fd, None)
        loop = asyncio.get_running_loop()
        loop.remove_reader(fd)
        if entry is None:
            return
        conn, timer = entry
        timer.cancel()
        try:
            first = conn.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            self.waiting[fd] = (conn, loop.call_later(self.first_byte_timeout, self._give_up, fd))
            loop.add_reader(fd, self._readable, fd)
            return
        except OSError:
            conn.close()
            return
        if not first:
            conn.close()
            return
        tls = first[0] == TLS_HANDSHAKE_RECORD
        task = loop.create_task(self._start(conn, tls))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _start(self, conn: socket.socket, tls: bool) -> object:
        loop = asyncio.get_running_loop()
        try:
            if tls:
                return await loop.connect_accepted_socket(self.factory, conn, ssl=self.context,
                                                          ssl_handshake_timeout=self.first_byte_timeout)
            return await loop.connect_accepted_socket(self.factory, conn)
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as exc:
            log.debug("connection dropped before it started: %s", exc)
            conn.close()
            return None

    def _give_up(self, fd: int) -> None:
        entry = self.waiting.pop(fd, None)
        if entry is not None:
            asyncio.get_running_loop().remove_reader(fd)
            entry[0].close()

    async def close(self) -> None:
        """Stop accepting and drop sockets that never sent a byte; started connections are the server's."""
        if self.accepting is not None:
            self.accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.accepting
        loop = asyncio.get_running_loop()
        for fd, (conn, timer) in list(self.waiting.items()):
            timer.cancel()
            loop.remove_reader(fd)
            conn.close()
        self.waiting.clear()
        for task in list(self.tasks):
            task.cancel()
        self.sock.close()
