"""The inspector (beyond AWS): `GET /{stage}/@inspect` serves a live page of this node's connections and groups,
and `/{stage}/@inspect/ws` is the management WebSocket it talks over: list, tail one connection or group, send
one a frame. Same authorization as @connections (management.allowFrom).

The socket speaks JSON. Asked: `{"op": "snapshot"}`, `{"op": "tail"|"untail", "connectionId"|"group"}`,
`{"op": "send", "connectionId"|"group", "data": "..."}`, `{"op": "presence", "group"}`; an optional `"id"` is
echoed in the answer. Told: `{"type": "snapshot"|"ok"|"error"|"presence", ...}`, `{"type": "frame", ...}` for
each tailed frame (wsgw/gateway/inspect.py), `{"type": "closed", "connectionId"}`, and `{"type": "dropped",
"count"}` when the page read too slowly and its bounded queue let the oldest events go.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from wsgw.aws.management import CONNECTION_ID
from wsgw.gateway import Gateway
from wsgw.gateway.inspect import Inspector, Watcher
from wsgw.group_config import GROUP_NAME_RULE, valid_group
from wsgw.request import HttpRequest
from wsgw.server.connections_api import ConnectionsApi
from wsgw.server.context import OpenSocket
from wsgw.server.http import HttpResponse, plain_error
from wsgw.server.websocket import handshake_request

log = logging.getLogger("wsgw.inspector")

PAGE = Path(__file__).with_name("inspector.html")
MAX_INSPECTORS = 16                 # management sockets open at once on one node
MAX_OP_BYTES = 256 * 1024           # one request from the page (a frame to send included)
MAX_SENDS_IN_FLIGHT = 8
WRITE_HIGH_WATER = 256 * 1024       # past this the socket stops taking events until it drains


class InspectorDoor:
    """The page and the management socket of one node."""

    def __init__(self, gateway: Gateway, connections: ConnectionsApi) -> None:
        self.gateway = gateway
        self.connections = connections
        self.inspector = Inspector(gateway)
        self.sockets: set[InspectorSocket] = set()

    def page(self, request: HttpRequest) -> HttpResponse:
        refused = self.connections.forbidden(request)
        if refused is not None:
            return refused
        if request.method not in ("GET", "HEAD"):
            return HttpResponse.aws_error(405, "MethodNotAllowedException", "use GET /{stage}/@inspect")
        return HttpResponse(200, PAGE.read_bytes(), [("Content-Type", "text/html; charset=utf-8"),
                                                     ("Cache-Control", "no-store")])

    def open(self, request: HttpRequest, transport: asyncio.Transport, backlog: bytes,
             open_sockets: set[OpenSocket]) -> HttpResponse | None:
        """Take the transport over as a management WebSocket; the refusal to answer instead, if any."""
        refused = self.connections.forbidden(request)
        if refused is not None:
            return refused
        if len(self.sockets) >= MAX_INSPECTORS:
            return plain_error(503, f"Service Unavailable: at most {MAX_INSPECTORS} inspectors at once")
        socket = InspectorSocket(self, transport, open_sockets)
        if not socket.handshake(request):
            return None                     # websockets answered the refusal itself
        self.sockets.add(socket)
        open_sockets.add(socket)
        if backlog:
            socket.data_received(backlog)
        return None


class InspectorSocket(asyncio.Protocol):
    """One management WebSocket: requests in, answers and tailed events out through a bounded queue."""

    def __init__(self, door: InspectorDoor, transport: asyncio.Transport, open_sockets: set[OpenSocket]) -> None:
        self.door = door
        self.inspector = door.inspector
        self.transport: asyncio.Transport | None = transport
        self.open_sockets = open_sockets
        self.protocol = ServerProtocol(max_size=MAX_OP_BYTES, logger=log)
        self.watcher: Watcher = self.inspector.watch(self._wake)
        self.flush_scheduled = False
        self.paused = False
        self.sends: set[asyncio.Task[None]] = set()

    def handshake(self, request: HttpRequest) -> bool:
        transport = self.transport
        assert transport is not None
        protocol = self.protocol
        response = protocol.accept(handshake_request(request))      # the listener checked the handshake first
        protocol.send_response(response)
        for chunk in protocol.data_to_send():
            if chunk:
                transport.write(chunk)
        if response.status_code != 101:
            transport.close()
            self.inspector.unwatch(self.watcher)
            return False
        # accept() answered without parsing: a fresh protocol in OPEN state reads frames from here on
        self.protocol = ServerProtocol(state=State.OPEN, max_size=MAX_OP_BYTES, logger=log)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        transport.set_protocol(self)
        self._answer(self.inspector.snapshot())
        return True

    # ----- asyncio.Protocol ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT and event.fin:
                self._request(bytes(event.data))
            elif isinstance(event, Frame) and event.opcode in (Opcode.BINARY, Opcode.CONT):
                self.protocol.fail(1003, "JSON text frames only")
        self._flush_protocol()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.open_sockets.discard(self)
        self.door.sockets.discard(self)
        self.inspector.unwatch(self.watcher)
        for task in self.sends:
            task.cancel()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def shutdown(self) -> None:
        """The node is stopping: going away (1001)."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(1001, "node stopping")
            self._flush_protocol()
        if self.transport is not None:
            self.transport.close()

    # ----- requests --------------------------------------------------------------------------------

    def _request(self, raw: bytes) -> None:
        try:
            asked = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._answer({"type": "error", "message": "send JSON objects: {\"op\": ...}"})
            return
        if not isinstance(asked, dict):
            self._answer({"type": "error", "message": "send JSON objects: {\"op\": ...}"})
            return
        op, ident = asked.get("op"), asked.get("id")
        reply: dict[str, Any] = {"op": op} if ident is None else {"op": op, "id": ident}
        try:
            if op == "snapshot":
                self._answer({**self.inspector.snapshot(), **reply})
            elif op in ("tail", "untail"):
                self._tail(op, asked, reply)
            elif op == "send":
                self._send(asked, reply)
            elif op == "presence":
                self._spawn(self._presence(_group(asked), reply))
            else:
                raise _Refused("op is one of snapshot, tail, untail, send, presence")
        except _Refused as refused:
            self._answer({"type": "error", **reply, "message": str(refused)})

    def _tail(self, op: str, asked: dict[str, Any], reply: dict[str, Any]) -> None:
        if "group" in asked:
            group = _group(asked)
            if op == "tail":
                problem = self.inspector.tail_group(self.watcher, group)
            else:
                problem = None
                self.inspector.untail_group(self.watcher, group)
            target: dict[str, Any] = {"group": group}
        else:
            connection_id = _connection_id(asked)
            if op == "tail":
                problem = self.inspector.tail_connection(self.watcher, connection_id)
            else:
                problem = None
                self.inspector.untail_connection(self.watcher, connection_id)
            target = {"connectionId": connection_id}
        if problem is not None:
            raise _Refused(problem)
        self._answer({"type": "ok", **reply, **target})

    def _send(self, asked: dict[str, Any], reply: dict[str, Any]) -> None:
        data = asked.get("data")
        if not isinstance(data, str):
            raise _Refused("data: the frame to send, as a string")
        if len(self.sends) >= MAX_SENDS_IN_FLIGHT:
            raise _Refused(f"at most {MAX_SENDS_IN_FLIGHT} sends in flight")
        frame = data.encode("utf-8")
        if len(frame) > self.door.gateway.limits.max_post_bytes:
            raise _Refused(f"a frame is at most {self.door.gateway.limits.max_post_bytes} bytes")
        if "group" in asked:
            self._spawn(self._send_group(_group(asked), frame, reply))
        else:
            self._spawn(self._send_connection(_connection_id(asked), frame, reply))

    async def _send_connection(self, connection_id: str, frame: bytes, reply: dict[str, Any]) -> None:
        delivered = await self.inspector.send_to_connection(connection_id, frame)
        self._answer({"type": "ok" if delivered else "error", **reply, "connectionId": connection_id,
                      **({} if delivered else {"message": "that connection is gone"})})

    async def _send_group(self, group: str, frame: bytes, reply: dict[str, Any]) -> None:
        delivered = await self.inspector.send_to_group(group, frame)
        self._answer({"type": "ok", **reply, "group": group, "delivered": delivered})

    async def _presence(self, group: str, reply: dict[str, Any]) -> None:
        page = await self.door.gateway.groups.presence(group, 100, None)
        self._answer({"type": "presence", **reply, "group": group, "count": page.count,
                      "members": [{"connectionId": m.connection_id, "principalId": m.principal_id}
                                  for m in page.members]})

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._guarded(work))
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)

    async def _guarded(self, work: Any) -> None:
        try:
            await work
        except _Refused as refused:
            self._answer({"type": "error", "message": str(refused)})
        except Exception as exc:             # Redis down, a node silent: the page shows it, the node goes on
            self._answer({"type": "error", "message": f"failed: {exc!r}"})

    # ----- writing ---------------------------------------------------------------------------------

    def _answer(self, message: dict[str, Any]) -> None:
        """Answers go through the same bounded queue as tailed frames, in order."""
        self.watcher.put(message)

    def _wake(self) -> None:
        if not self.flush_scheduled and self.transport is not None:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_events)

    def _flush_events(self) -> None:
        self.flush_scheduled = False
        watcher = self.watcher
        if self.transport is None or self.protocol.state is not State.OPEN:
            watcher.events.clear()
            return
        while watcher.events and not self.paused:
            if watcher.dropped:
                self.protocol.send_text(orjson.dumps({"type": "dropped", "count": watcher.dropped}))
                watcher.dropped = 0
            self.protocol.send_text(orjson.dumps(watcher.events.popleft()))
            self._flush_protocol()

    def _flush_protocol(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            else:
                transport.close()


class _Refused(Exception):
    """A request the socket answers with an error (and stays open)."""


def _group(asked: dict[str, Any]) -> str:
    group = asked.get("group")
    if not isinstance(group, str) or not valid_group(group):
        raise _Refused(f"group: {GROUP_NAME_RULE}")
    return group


def _connection_id(asked: dict[str, Any]) -> str:
    connection_id = asked.get("connectionId")
    if not isinstance(connection_id, str) or not CONNECTION_ID.match(connection_id):
        raise _Refused("connectionId: a connection id, or give a group")
    return connection_id
