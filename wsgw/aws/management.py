"""The @connections management API's wire shapes, as botocore's `apigatewaymanagementapi` model has them.

rest-json: botocore reads an error's code from `x-amzn-ErrorType` first, so every error names its type; a 410
carries `GoneException` with an empty body, as AWS sends it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

CONNECTION_ID: Final = re.compile(r"^[A-Za-z0-9+/=_-]{1,128}$")

GONE: Final = "GoneException"
FORBIDDEN: Final = "ForbiddenException"
PAYLOAD_TOO_LARGE: Final = "PayloadTooLargeException"
BAD_REQUEST: Final = "BadRequestException"


def iso8601(epoch_ms: int) -> str:
    """botocore parses the model's iso8601 timestamps; keep milliseconds and a Z."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def connection_json(connected_at_ms: int, last_active_ms: int, source_ip: str,
                    user_agent: str | None) -> dict[str, object]:
    """GetConnection's wire shape: lowerCamelCase keys (the model's locationNames)."""
    identity: dict[str, str] = {"sourceIp": source_ip}
    if user_agent is not None:
        identity["userAgent"] = user_agent
    return {"connectedAt": iso8601(connected_at_ms), "lastActiveAt": iso8601(last_active_ms),
            "identity": identity}


def too_large_message(limit: int) -> str:
    return f"Message too long: the limit is {limit} bytes"
