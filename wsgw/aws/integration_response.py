"""Choosing templates and integration responses the way API Gateway does, for non-proxy integrations; pure.

Three choices, each with AWS's rules (sources in docs/mapping-templates.md):

- **Request template** (`choose_request_template`): WebSocket integrations key their ``requestTemplates`` by
  the value of ``templateSelectionExpression``; REST integrations key them by the request's Content-Type
  (absent means ``application/json``). With no matching key, ``passthroughBehavior`` decides:
  ``WHEN_NO_MATCH`` passes the body through untransformed, ``WHEN_NO_TEMPLATES`` passes it through only when
  the integration has no template at all, ``NEVER`` rejects it (REST: 415 Unsupported Media Type).
- **Integration response** (`ResponseSelector`): keys of ``integrationResponses`` are ``$default``, an exact
  value, or a ``/regex/`` matched against the whole status code (HTTP) or error message (Lambda).
- **Response template** (`TemplateSelector`): an integration response's ``templateSelectionExpression`` may
  read ``${integration.response.statuscode}``, ``${integration.response.header.Name}``,
  ``${integration.response.multivalueheader.Name}`` and ``${request.body.path}`` (the last through the route
  selection compiler, wsgw/selection.py); the result keys ``responseTemplates``, ``$default`` catching the rest.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from wsgw.selection import RouteSelector, SelectionExpressionError, compile_selection

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "DEFAULT_KEY",
    "Passthrough",
    "PassthroughBehavior",
    "Reject",
    "ResponseSelector",
    "SelectionError",
    "TemplateSelector",
    "Transform",
    "choose_request_template",
    "compile_response_selector",
    "compile_template_selector",
    "content_type_key",
]

DEFAULT_KEY: Final = "$default"
DEFAULT_CONTENT_TYPE: Final = "application/json"  # AWS: a request without Content-Type is taken as JSON
T = TypeVar("T")


class SelectionError(ValueError):
    """A selection key or expression that cannot be compiled; the message names it."""


class PassthroughBehavior(enum.Enum):
    """What a non-proxy integration does with a body no request template matches (AWS's names)."""

    WHEN_NO_MATCH = "WHEN_NO_MATCH"
    WHEN_NO_TEMPLATES = "WHEN_NO_TEMPLATES"
    NEVER = "NEVER"

    @classmethod
    def parse(cls, value: str | None, key: str = "passthroughBehavior") -> PassthroughBehavior:
        """AWS's spelling; None is AWS's default, WHEN_NO_MATCH."""
        if value is None:
            return cls.WHEN_NO_MATCH
        try:
            return cls(value)
        except ValueError:
            raise SelectionError(f"{key}: {value!r} is not one of WHEN_NO_MATCH, WHEN_NO_TEMPLATES, NEVER") from None


@dataclass(frozen=True, slots=True)
class Transform(Generic[T]):
    """Render this template (found under this key)."""

    key: str
    template: T


@dataclass(frozen=True, slots=True)
class Passthrough:
    """Send the body to the backend as it came."""


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the request (REST: 415 Unsupported Media Type)."""

    reason: str


def content_type_key(content_type: str | None) -> str:
    """The requestTemplates key of a Content-Type header: the media type, lowercase, without parameters."""
    if not content_type:
        return DEFAULT_CONTENT_TYPE
    media = content_type.split(";", 1)[0].strip().lower()
    return media or DEFAULT_CONTENT_TYPE


def choose_request_template(
    templates: Mapping[str, T],
    key: str | None,
    behavior: PassthroughBehavior,
    *,
    default_key: bool = True,
) -> Transform[T] | Passthrough | Reject:
    """Which request template applies to a request whose selection key is `key`.

    `default_key`: WebSocket integrations fall back to a `$default` template (AWS's catch-all); REST keys
    are content types and have no catch-all, so the REST front passes False.
    """
    if key is not None and key in templates:
        return Transform(key, templates[key])
    if default_key and DEFAULT_KEY in templates:
        return Transform(DEFAULT_KEY, templates[DEFAULT_KEY])
    if behavior is PassthroughBehavior.WHEN_NO_MATCH:
        return Passthrough()
    if behavior is PassthroughBehavior.WHEN_NO_TEMPLATES and not templates:
        return Passthrough()
    return Reject("Unsupported Media Type")


class ResponseSelector(Generic[T]):
    """An integration's responses by key: exact values, then `/regex/` keys in order, then `$default`."""

    __slots__ = ("_default", "_exact", "_patterns")

    def __init__(self, exact: dict[str, T], patterns: Sequence[tuple[re.Pattern[str], str, T]], default: T | None):
        self._exact = exact
        self._patterns = tuple(patterns)
        self._default = default

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResponseSelector) and (self._exact, self._patterns, self._default) == (
            other._exact, other._patterns, other._default)

    __hash__ = None  # type: ignore[assignment]

    def select(self, value: str | int | None) -> T | None:
        """The response for a status code (HTTP) or error message (Lambda); None when nothing matches."""
        if value is None:
            return self._default
        text = str(value)
        found = self._exact.get(text)
        if found is not None:
            return found
        for pattern, _key, response in self._patterns:
            if pattern.fullmatch(text) is not None:
                return response
        return self._default

    def select_key(self, value: str | int | None) -> str | None:
        """The key of the response :meth:`select` picks (for logs and the response's own selection)."""
        if value is None:
            return DEFAULT_KEY if self._default is not None else None
        text = str(value)
        if text in self._exact:
            return text
        for pattern, key, _response in self._patterns:
            if pattern.fullmatch(text) is not None:
                return key
        return DEFAULT_KEY if self._default is not None else None


def compile_response_selector(
    responses: Mapping[str, T], key: str = "integrationResponses"
) -> ResponseSelector[T]:
    """Compile integrationResponses keys; raise SelectionError naming a bad regex."""
    exact: dict[str, T] = {}
    patterns: list[tuple[re.Pattern[str], str, T]] = []
    default: T | None = None
    for response_key, response in responses.items():
        name = str(response_key)
        if name == DEFAULT_KEY:
            default = response
        elif len(name) >= 2 and name.startswith("/") and name.endswith("/"):
            try:
                patterns.append((re.compile(name[1:-1]), name, response))
            except re.error as exc:
                raise SelectionError(f"{key}.{name}: not a regular expression ({exc.msg})") from None
        else:
            exact[name.replace("\\$", "$")] = response
    return ResponseSelector(exact, patterns, default)


_INTEGRATION_VARIABLE: Final = re.compile(
    r"\$\{integration\.response\.(statuscode|header\.[^}\s]+|multivalueheader\.[^}\s]+)\}"
    r"|\$integration\.response\.(statuscode|header\.[\w-]+|multivalueheader\.[\w-]+)"
)

Part = str | RouteSelector | tuple[str, str]  # literal, $request.body selector, (kind, name) of the response


class TemplateSelector:
    """A compiled templateSelectionExpression; :meth:`key` runs per response (or request)."""

    __slots__ = ("_parts", "expression")

    def __init__(self, expression: str, parts: Sequence[Part]) -> None:
        self.expression = expression
        self._parts = tuple(parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TemplateSelector) and self.expression == other.expression

    def __hash__(self) -> int:
        return hash(self.expression)

    def key(
        self,
        body: object = None,
        status_code: int | None = None,
        headers: Mapping[str, Sequence[str]] | None = None,
    ) -> str | None:
        """The template key, or None (use `$default`). `body` is the parsed request body; `headers` lowercased."""
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, RouteSelector):
                out.append(part.select_parsed(body) or "")
            else:
                kind, name = part
                if kind == "statuscode":
                    out.append("" if status_code is None else str(status_code))
                else:
                    values = (headers or {}).get(name.lower(), ())
                    out.append((values[-1] if values else "") if kind == "header" else ",".join(values))
        return "".join(out) or None


def compile_template_selector(expression: str, key: str = "templateSelectionExpression") -> TemplateSelector:
    """Compile an expression over `$request.body...` and `$integration.response...`; raise SelectionError."""
    if not isinstance(expression, str) or not expression.strip():
        raise SelectionError(f"{key}: must be a non-empty string such as ${{integration.response.statuscode}}")
    parts: list[Part] = []
    last = 0
    for match in _INTEGRATION_VARIABLE.finditer(expression):
        parts.extend(_request_parts(expression[last : match.start()], key))
        variable = match.group(1) or match.group(2)
        kind, _, name = variable.partition(".")
        parts.append((kind, name))
        last = match.end()
    parts.extend(_request_parts(expression[last:], key))
    return TemplateSelector(expression, parts)


def _request_parts(text: str, key: str) -> list[Part]:
    if not text:
        return []
    if "$" not in text.replace("\\$", ""):
        return [text.replace("\\$", "$")]
    try:
        return [compile_selection(text)]
    except SelectionExpressionError as exc:
        raise SelectionError(f"{key}: {exc}") from None
