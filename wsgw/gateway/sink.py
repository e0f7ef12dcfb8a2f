"""What the gateway needs from a socket; the server layer implements it (imports point down)."""

from __future__ import annotations

from typing import Protocol


class SocketSink(Protocol):
    """One accepted WebSocket as the gateway sees it."""

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
