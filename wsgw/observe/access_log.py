"""Access logs as AWS's `accessLogSettings`: one record per connect, message, disconnect, push and REST
request, named by AWS's `$context` variables (docs/access-logs.md), written off the event loop.

The loop only builds a small dict and puts it on a SimpleQueue (no lock contention, no I/O); a daemon
writer thread drains it in batches, formats (the default JSON line, or the configured `format` template)
and writes to the destination (stdout, a rotating file, syslog). Records never hold headers or query
strings, so tokens, API keys, Authorization headers and signatures cannot reach a line.
"""

from __future__ import annotations

import functools
import logging
import logging.handlers
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from wsgw.observe.redact import redact_mapping
from wsgw.observe.settings import VARIABLE, AccessLogSettings, Destination

Record = dict[str, Any]
_STOP = object()
_BATCH = 1024
WAKE_SECONDS = 0.05          # the longest a line waits before it is written


@functools.lru_cache(maxsize=4)
def _clf_second(second: int) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))


def clf_time(epoch_ms: int) -> str:
    """AWS's `$context.requestTime`: dd/MMM/yyyy:HH:mm:ss +0000 (CLF, UTC); formatted once per second."""
    return _clf_second(epoch_ms // 1000)


class LineFormat:
    """Record → one line: the default JSON object, or the `format` template with `$context.x` replaced.

    In a template that is JSON (starts with `{`) values are escaped for a JSON string; a variable without a
    value prints `-`, as AWS does."""

    def __init__(self, template: str | None, static: Record) -> None:
        self.static = static
        self.template = template
        self.parts: list[str | tuple[str]] = []
        if template is not None:
            at = 0
            for match in VARIABLE.finditer(template):
                self.parts.append(template[at:match.start()])
                self.parts.append((match.group(1),))
                at = match.end()
            self.parts.append(template[at:])
        self.json_template = template is not None and template.lstrip().startswith("{")

    def line(self, record: Record) -> str:
        values = self.values(record)
        if self.template is None:
            return orjson.dumps(values).decode()
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = values.get(part[0])
            if value is None:
                out.append("-")
            elif self.json_template:
                out.append(orjson.dumps(value if isinstance(value, str) else str(value)).decode()[1:-1])
            else:
                out.append(str(value))
        return "".join(out)

    def values(self, record: Record) -> Record:
        """Every variable of the record by its `$context` name (the static ones of the stage included)."""
        values: Record = {**self.static}
        for key, value in record.items():
            if value is None or value == "":
                continue
            if key == "authorizer":      # the context an authorizer returned: $context.authorizer.<property>
                if self.template is None:            # the default line names the principal only
                    principal = value.get("principalId")
                    if isinstance(principal, str):
                        values["authorizer.principalId"] = principal
                    continue
                for prop, v in redact_mapping(value).items():
                    values[f"authorizer.{prop}"] = v if isinstance(v, str | int | float | bool) else str(v)
                continue
            values[key] = value
        epoch = values.get("requestTimeEpoch")
        if isinstance(epoch, int):
            values["requestTime"] = clf_time(epoch)
        return values


class AccessLog:
    """What the gateway and the REST front call: `write(record)` (cheap, never blocks)."""

    def __init__(self, settings: AccessLogSettings, static: Record, base_dir: Path | None = None) -> None:
        self.format = LineFormat(settings.format, static)
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.sink = _sink(settings.destination, base_dir)
        self.thread: threading.Thread | None = None
        self.write: Callable[[Record], None] = self.queue.put

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="wsgw-access-log", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write everything queued, then close the destination."""
        if self.thread is None:
            return
        self.queue.put(_STOP)
        self.thread.join(timeout)
        self.thread = None

    def _run(self) -> None:
        # Polls instead of blocking on get(): a writer woken by every put() fights the loop for the GIL once
        # per record (that cost +27% CPU per message); waking every WAKE_SECONDS costs nothing measurable.
        while True:
            batch: list[Any] = []
            while len(batch) < _BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                time.sleep(WAKE_SECONDS)
                continue
            stop = False
            lines: list[str] = []
            for item in batch:
                if item is _STOP:
                    stop = True
                    continue
                try:
                    lines.append(self.format.line(item))
                except Exception:            # one bad record must not stop the writer
                    logging.getLogger("wsgw.access").exception("access log record not written")
            if lines:
                try:
                    self.sink.write(lines)
                except Exception:
                    logging.getLogger("wsgw.access").exception("access log destination failed")
            if stop:
                self.sink.close()
                return


class _Sink:
    """One write (and flush) per chunk of lines; a chunk stays under `chunk_bytes` so a rotating file turns
    over close to its maxBytes. chunk_bytes 0: one message per line (syslog)."""

    def __init__(self, handler: logging.Handler, chunk_bytes: int = 65_536) -> None:
        self.handler = handler
        self.chunk_bytes = chunk_bytes
        handler.setFormatter(logging.Formatter("%(message)s"))

    def write(self, lines: list[str]) -> None:
        chunk: list[str] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > self.chunk_bytes:
                self._emit(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            self._emit(chunk)

    def _emit(self, lines: list[str]) -> None:
        self.handler.handle(logging.makeLogRecord({"msg": "\n".join(lines), "levelno": logging.INFO}))

    def close(self) -> None:
        self.handler.close()


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """sys.stdout as it is when a line is written (tests and daemons replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(sys.stdout)
        super().emit(record)


def _sink(destination: Destination, base_dir: Path | None) -> _Sink:
    if destination.kind == "file":
        path = Path(destination.path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        chunk = min(65_536, destination.max_bytes // 4) if destination.max_bytes else 65_536
        return _Sink(logging.handlers.RotatingFileHandler(path, maxBytes=destination.max_bytes,
                                                          backupCount=destination.backup_count,
                                                          encoding="utf-8", delay=True), chunk)
    if destination.kind == "syslog":
        address: str | tuple[str, int] = destination.path or (destination.host, destination.port)
        return _Sink(logging.handlers.SysLogHandler(address, facility=logging.handlers.SysLogHandler.LOG_LOCAL0),
                     0)
    return _Sink(_Stdout())
