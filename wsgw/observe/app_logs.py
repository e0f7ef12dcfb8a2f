"""Application logs (what wsgw says about itself, not the access log): `--log-format text|json`.

Both formats scrub credential-looking values (redact.py) from the message and any traceback, so a token
that reached an exception message still never reaches the log."""

from __future__ import annotations

import logging
import sys
import time

import orjson

from wsgw.observe.redact import redact_text

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingText(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, message, and exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": redact_text(record.getMessage())}
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def configure(level: str, fmt: str = "text") -> None:
    """Install the root handler on stderr with the chosen format (replacing any earlier one)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if fmt == "json" else RedactingText())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
