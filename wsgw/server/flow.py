"""Read-side flow control for one TCP connection: the only caller of transport.pause_reading/resume_reading.

Both protocols on a socket want reading paused for their own reason (the HTTP protocol for too many pipelined
requests, the WebSocket protocol for a full inbox); each reason is held and released on its own, and the
transport reads again only once no reason holds it.
"""

from __future__ import annotations

import asyncio


class FlowControl:
    """Handed from the HTTP protocol to the WebSocket protocol with the transport on upgrade."""

    __slots__ = ("reasons", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.reasons: set[str] = set()

    @property
    def paused(self) -> bool:
        return bool(self.reasons)

    def pause(self, reason: str) -> None:
        if reason in self.reasons:
            return
        self.reasons.add(reason)
        if len(self.reasons) == 1 and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume(self, reason: str) -> None:
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons and not self.transport.is_closing():
            self.transport.resume_reading()
