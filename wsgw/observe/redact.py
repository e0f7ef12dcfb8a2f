"""The one rule for secrets in logs: which names are secret, and scrubbing them out of free text.

Access log records never carry headers or query strings at all; this guards what can still reach a log
line: an authorizer's context properties and application log messages."""

from __future__ import annotations

import re

REDACTED = "[redacted]"
#: A key whose value is a credential: token, secret, password, Authorization, signature, API key, cookie.
SECRET_NAME = re.compile(r"token|secret|passw|authori[sz]ation|signature|api[-_]?key|credential|cookie|session",
                         re.IGNORECASE)
#: Credentials as they appear inside free text: `Bearer x`, `token=x`, `X-Amz-Signature=x`, `"apiKey": "x"`.
_IN_TEXT = re.compile(
    r"(?P<scheme>\b(?:Bearer|Basic|AWS4-HMAC-SHA256)\s+)[^\s,;\"']+"
    r"|(?P<key>[\w.-]*(?:token|secret|passw|signature|api[-_]?key|credential|authorization)[\w-]*"
    r"[\"']?\s*[=:]\s*[\"']?(?:(?:Bearer|Basic|AWS4-HMAC-SHA256)\s+)?)[^\s&,;\"']+",
    re.IGNORECASE)


def redact_text(text: str) -> str:
    """`text` with every credential-looking value replaced by [redacted]."""
    return _IN_TEXT.sub(lambda m: (m.group("scheme") or m.group("key")) + REDACTED, text)


def redact_mapping(values: dict[str, object]) -> dict[str, object]:
    """A copy with the values of secret-named keys replaced (an authorizer's context)."""
    return {k: (REDACTED if SECRET_NAME.search(k) else v) for k, v in values.items()}
