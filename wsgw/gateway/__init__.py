"""One node's core; see core.Gateway."""

from wsgw.gateway.connection import Connection
from wsgw.gateway.core import ConnectOutcome, Gateway
from wsgw.gateway.sink import SocketSink

__all__ = ["ConnectOutcome", "Connection", "Gateway", "SocketSink"]
