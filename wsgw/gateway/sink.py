"""What the gateway needs from a socket; the server layer implements it (imports point down)."""

from __future__ import annotations

from typing import Protocol


class SocketSink(Protocol):
    """One WebSocket as the gateway sees it: from the upgrade request on, before and after the 101."""

    def accept(self, subprotocol: str | None) -> bool:
        """Write the 101 (naming `subprotocol`, when the client offered it). False when the client is gone or
        the handshake cannot complete; the socket has then answered or closed by itself."""
        ...

    def send(self, data: bytes | str) -> bool:
        """Hand a frame to the socket (text when str or valid UTF-8, else binary); False when closed."""
        ...

    def send_encoded(self, frame: bytes) -> bool:
        """Write an already-serialised data frame (broadcast encodes once for all sockets)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the server reports the end through Gateway.on_closed."""
        ...

    def abort(self) -> None:
        """Drop the TCP connection at once (half-open peer)."""
        ...

    def ping(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...
