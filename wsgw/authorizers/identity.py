"""Identity sources: where an authorizer finds who is calling, read from an AuthRequest.

AWS spellings for WebSocket APIs (`route.request.header.X`, `route.request.querystring.X`,
`stageVariables.X`, `context.X`) and for HTTP APIs (`$request.header.X`, `$request.querystring.X`), so the
REST front reuses the same authorizers. Headers match case-insensitively, query parameters exactly; a
repeated name gives its last value (as the single-value maps of AWS events do). An empty value counts as
missing: AWS answers 401 for identity sources that are "missing, null, empty or invalid".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from wsgw.authorizers.fronts import AuthRequest

SourceKind = Literal["header", "querystring", "stageVariables", "context"]

_PREFIXES: tuple[tuple[str, SourceKind], ...] = (
    ("route.request.header.", "header"),
    ("route.request.querystring.", "querystring"),
    ("$request.header.", "header"),
    ("$request.querystring.", "querystring"),
    ("method.request.header.", "header"),
    ("stageVariables.", "stageVariables"),
    ("context.", "context"),
)


@dataclass(frozen=True, slots=True)
class IdentitySource:
    """One configured identity source, split into where to look and the name to look for."""

    text: str
    kind: SourceKind
    name: str

    @classmethod
    def parse(cls, text: str) -> IdentitySource | None:
        """The source for an AWS spelling, or None when ``text`` is not one."""
        for prefix, kind in _PREFIXES:
            if text.startswith(prefix) and len(text) > len(prefix):
                return cls(text, kind, text[len(prefix):])
        return None

    @property
    def is_header(self) -> bool:
        return self.kind == "header"

    def resolve(self, request: AuthRequest) -> str | None:
        """The non-empty value this source names in the request, or None."""
        value: object
        if self.kind == "header":
            value = request.headers.last(self.name)
        elif self.kind == "querystring":
            value = last_value(request.query, self.name)
        elif self.kind == "stageVariables":
            value = request.stage_variables.get(self.name)
        else:
            value = _dotted(request.request_context(), self.name)
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        return value if isinstance(value, str) and value else None


def last_value(pairs: list[tuple[str, str]], name: str) -> str | None:
    """The last value given for ``name`` in repeated query parameters (names match exactly)."""
    found: str | None = None
    for key, value in pairs:
        if key == name:
            found = value
    return found


def _dotted(root: Mapping[str, object], path: str) -> object:
    value: object = root
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
