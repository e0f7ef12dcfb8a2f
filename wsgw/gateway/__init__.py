"""One node's core; see core.Gateway (a composition of connect, inbox, deadlines, keepalive, local)."""

from wsgw.gateway.clock import Clock
from wsgw.gateway.connect import ConnectOutcome
from wsgw.gateway.connection import Connection
from wsgw.gateway.core import Gateway
from wsgw.gateway.sink import SocketSink

__all__ = ["Clock", "ConnectOutcome", "Connection", "Gateway", "SocketSink"]
