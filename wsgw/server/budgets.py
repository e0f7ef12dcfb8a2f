"""Per-connection budgets: every byte a peer can make the node hold, and the work one read may cost, in one place.

Each budget has a setting (`limits:` in wsgw.yaml, except the fixed HTTP head sizes), a counter when it trips
(`wsgw_budget_exceeded_total{budget="..."}`) and a clean end: a close code for a WebSocket, a status or a
pause for HTTP. The protocols ask these methods instead of comparing numbers of their own, so a new buffer
comes with its budget or is visibly missing one. README "Running it safely" lists them with their defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from wsgw.config import Limits
from wsgw.config.node import ListenerSettings
from wsgw.metrics import Metrics

BUDGET_METRIC = "wsgw_budget_exceeded_total"


@dataclass(frozen=True, slots=True)
class Budgets:
    """The numbers; defaults match `Limits`' defaults."""

    send_buffer_bytes: int = 4 * 1024 * 1024     # out, WebSocket: data AND control frames not yet taken by the peer
    message_bytes: int = 131_072                 # in, WebSocket: one message reassembled (1009, websockets' max_size)
    frame_bytes: int = 32_768                    # in, WebSocket: one frame (1009)
    fragments_per_message: int = 1_024           # in, WebSocket: frames of one message (1009)
    read_batch_bytes: int = 16_384               # work: bytes parsed per loop turn before the connection yields
    early_bytes: int = 256 * 1024                # in: bytes sent before the 101 (the socket is aborted)
    head_bytes: int = 16 * 1024                  # in, HTTP: request line and headers (431)
    url_bytes: int = 8 * 1024                    # in, HTTP: the request target (414)
    header_count: int = 100                      # in, HTTP: header fields (431)
    pipelined_requests: int = 32                 # in, HTTP: parsed requests waiting their turn (reading pauses)
    pipelined_bytes: int = 1024 * 1024           # in, HTTP: their bodies (reading pauses)
    unsent_response_bytes: int = 256 * 1024      # out, HTTP: answers the peer has not read (reading pauses)
    drain_bytes_per_second: int = 16 * 1024      # out, closing: a closing peer draining slower is aborted

    @classmethod
    def from_limits(cls, limits: Limits, listener: ListenerSettings | None = None) -> Budgets:
        """The API's `limits:` (per connection, in wsgw.yaml) and the node's listener tuning (NodeConfig)."""
        tuning = listener or ListenerSettings()
        return cls(send_buffer_bytes=limits.max_send_buffer_bytes, message_bytes=limits.max_message_bytes,
                   frame_bytes=limits.max_frame_bytes, fragments_per_message=limits.max_fragments_per_message,
                   read_batch_bytes=limits.read_batch_bytes, pipelined_requests=limits.max_pipelined_requests,
                   unsent_response_bytes=limits.max_unsent_response_bytes, early_bytes=tuning.max_early_bytes,
                   head_bytes=tuning.max_head_bytes, url_bytes=tuning.max_url_bytes,
                   pipelined_bytes=tuning.max_queued_bytes)

    def with_limits(self, limits: Limits) -> Budgets:
        """The same node tuning under another API's `limits:` (several APIs or stages on one port)."""
        return dataclasses.replace(
            self, send_buffer_bytes=limits.max_send_buffer_bytes, message_bytes=limits.max_message_bytes,
            frame_bytes=limits.max_frame_bytes, fragments_per_message=limits.max_fragments_per_message,
            read_batch_bytes=limits.read_batch_bytes, pipelined_requests=limits.max_pipelined_requests,
            unsent_response_bytes=limits.max_unsent_response_bytes)

    # ----- the checks: True means "over budget" --------------------------------------------------------

    def over_send(self, buffered: int, adding: int = 0) -> bool:
        return buffered + adding > self.send_buffer_bytes

    def over_fragments(self, fragments: int) -> bool:
        return fragments > self.fragments_per_message

    def over_early(self, received: int) -> bool:
        return received > self.early_bytes

    def over_pipeline(self, requests: int, body_bytes: int) -> bool:
        return requests >= self.pipelined_requests or body_bytes > self.pipelined_bytes

    def over_unsent(self, buffered: int) -> bool:
        return buffered > self.unsent_response_bytes

    def draining(self, before: int, now: int, seconds: float) -> bool:
        """A closing peer still takes what it was promised at a useful rate (then it is not aborted yet)."""
        return now > 0 and before - now >= self.drain_bytes_per_second * seconds


def tripped(metrics: Metrics, budget: str) -> None:
    """Count a budget that ended or held back a connection."""
    metrics.count(metrics.budget_exceeded, budget=budget)
