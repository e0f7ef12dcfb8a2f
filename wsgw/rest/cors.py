"""CORS for the REST front, configured per API as HTTP APIs do (`http.cors`). Pure.

With CORS configured, AWS answers preflight OPTIONS requests itself (even without an OPTIONS route),
adds the configured headers to integration responses and ignores CORS headers the integration returns
(AWS developer guide, "Configure CORS for HTTP APIs").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wsgw.errors import ConfigProblem
from wsgw.headers import Headers

Pairs = list[tuple[str, str]]

CORS_KEYS = {"allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders", "maxAge", "allowCredentials"}
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"}


@dataclass(frozen=True, slots=True)
class CorsConfig:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    def origin_allowed(self, origin: str) -> bool:
        low = origin.lower()
        for allowed in self.allow_origins:
            if allowed == "*" or allowed.lower() == low:
                return True
            if "://*." in allowed:          # https://*.example.com: any subdomain, same scheme
                scheme, _, domain = allowed.lower().partition("://*.")
                if low.startswith(scheme + "://") and low.endswith("." + domain):
                    return True
        return False

    def _origin_header(self, origin: str) -> str:
        return "*" if "*" in self.allow_origins and not self.allow_credentials else origin

    def preflight_headers(self, origin: str, requested_headers: str | None) -> Pairs:
        """Headers of the 204 answering a preflight; none when the origin is not allowed."""
        if not self.origin_allowed(origin):
            return []
        headers: Pairs = [("Access-Control-Allow-Origin", self._origin_header(origin))]
        if self.allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if self.allow_methods:
            headers.append(("Access-Control-Allow-Methods", ",".join(self.allow_methods)))
        if self.allow_headers:
            if "*" in self.allow_headers and requested_headers and self.allow_credentials:
                headers.append(("Access-Control-Allow-Headers", requested_headers))
            else:
                headers.append(("Access-Control-Allow-Headers", ",".join(self.allow_headers)))
        if self.max_age is not None:
            headers.append(("Access-Control-Max-Age", str(self.max_age)))
        headers.append(("Vary", "Origin"))
        return headers

    def response_headers(self, origin: str | None) -> Pairs:
        """Headers added to an actual (non-preflight) response."""
        if origin is None or not self.origin_allowed(origin):
            return []
        headers: Pairs = [("Access-Control-Allow-Origin", self._origin_header(origin))]
        if self.allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if self.expose_headers:
            headers.append(("Access-Control-Expose-Headers", ",".join(self.expose_headers)))
        headers.append(("Vary", "Origin"))
        return headers


def is_preflight(method: str, headers: Headers) -> bool:
    """An OPTIONS request with Origin and Access-Control-Request-Method, which AWS answers itself."""
    return (method == "OPTIONS" and headers.get("origin") is not None
            and headers.get("access-control-request-method") is not None)


def strip_cors(headers: Pairs) -> Pairs:
    """The integration's own Access-Control-* headers, which AWS ignores once CORS is configured."""
    return [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]


def _strings(raw: Any, key: str, problems: list[ConfigProblem]) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        problems.append(ConfigProblem(key, "must be a list of non-empty strings"))
        return ()
    return tuple(items)


def parse_cors(raw: Any, key: str = "http.cors") -> tuple[CorsConfig | None, list[ConfigProblem]]:
    """Validate `http.cors`; problems name the key (e.g. http.cors.maxAge)."""
    problems: list[ConfigProblem] = []
    if raw is None:
        return None, problems
    if not isinstance(raw, dict):
        return None, [ConfigProblem(key, "must be a mapping such as {allowOrigins: ['https://app.example.com']}")]
    for unknown in sorted(set(map(str, raw)) - CORS_KEYS):
        problems.append(ConfigProblem(f"{key}.{unknown}", "unknown key; use one of " + ", ".join(sorted(CORS_KEYS))))
    origins = _strings(raw.get("allowOrigins"), f"{key}.allowOrigins", problems)
    methods = tuple(m.upper() for m in _strings(raw.get("allowMethods"), f"{key}.allowMethods", problems))
    for method in methods:
        if method not in _METHODS:
            problems.append(ConfigProblem(f"{key}.allowMethods",
                                          f"'{method}' is not one of " + ", ".join(sorted(_METHODS))))
    headers = _strings(raw.get("allowHeaders"), f"{key}.allowHeaders", problems)
    expose = _strings(raw.get("exposeHeaders"), f"{key}.exposeHeaders", problems)
    max_age = raw.get("maxAge")
    bad_age = isinstance(max_age, bool) or not isinstance(max_age, int) or not -1 <= max_age <= 86400
    if max_age is not None and bad_age:
        problems.append(ConfigProblem(f"{key}.maxAge", "must be a whole number of seconds from -1 to 86400"))
        max_age = None
    credentials = raw.get("allowCredentials", False)
    if not isinstance(credentials, bool):
        problems.append(ConfigProblem(f"{key}.allowCredentials", "must be true or false"))
        credentials = False
    if credentials and "*" in origins:
        problems.append(ConfigProblem(f"{key}.allowOrigins",
                                      "'*' cannot be combined with allowCredentials: true; list the origins"))
    return CorsConfig(origins, methods, headers, expose, max_age, credentials), problems
