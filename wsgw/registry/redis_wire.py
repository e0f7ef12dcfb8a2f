"""The Redis URL as wsgw reads it: its own options (node TTL, push timeout, key prefix) and a printable form.

The key layout and commands live in redis_store, the messages between nodes in redis_rpc.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_NODE_TTL = 6.0        # seconds without a heartbeat before a node counts as dead
DEFAULT_PUSH_TIMEOUT = 5.0    # seconds a caller waits for the owning node's reply


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """The Redis URL plus wsgw's own query options (stripped before redis-py sees the URL)."""

    url: str
    node_ttl: float = DEFAULT_NODE_TTL
    push_timeout: float = DEFAULT_PUSH_TIMEOUT
    key_prefix: str = "wsgw"

    @classmethod
    def from_url(cls, url: str) -> RedisOptions:
        """`redis://h:p/0?node_ttl=6&push_timeout=5&key_prefix=wsgw` → options; unknown keys stay in the URL."""
        parts = urlsplit(url)
        kept: list[tuple[str, str]] = []
        found: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in ("node_ttl", "push_timeout", "key_prefix"):
                found[key] = value
            else:
                kept.append((key, value))
        clean = urlunsplit(parts._replace(query=urlencode(kept)))
        try:
            node_ttl = float(found.get("node_ttl", DEFAULT_NODE_TTL))
            push_timeout = float(found.get("push_timeout", DEFAULT_PUSH_TIMEOUT))
        except ValueError as exc:
            raise ValueError(f"--redis: node_ttl and push_timeout are seconds ({exc})") from None
        if not 0.5 <= node_ttl <= 300 or not 0.05 <= push_timeout <= 60:
            raise ValueError("--redis: node_ttl must be 0.5..300 seconds and push_timeout 0.05..60 seconds")
        prefix = found.get("key_prefix", "wsgw")
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("--redis: key_prefix must be non-empty and free of braces")
        return cls(clean, node_ttl, push_timeout, prefix)


def redacted(url: str) -> str:
    """The URL fit to print: any password (userinfo or `?password=`) replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if sep else f"{user}@{host}"
    query = "&".join(f"{k}=***" if k.lower() == "password" else f"{k}={v}"
                     for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
