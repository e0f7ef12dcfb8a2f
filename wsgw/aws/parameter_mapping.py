"""HTTP APIs' parameter mapping values (`requestParameters` of an AWS_PROXY integration), compiled once; pure.

A value is a static string, one whole expression (`$request.body.name`) or several `${...}` parts mixed with
text (`${request.body.room}-${context.requestId}`), as in AWS's "Transforming API requests and responses"
for HTTP APIs. Sources understood: `request.body` (the raw body), `request.body.<json path>`,
`request.header.<name>`, `request.querystring.<name>`, `request.path.<name>`, `context.<variable>` (nested:
`context.authorizer.principalId`, `context.identity.sourceIp`) and `stageVariables.<name>`. A JSON value that is
an object or array renders as its JSON text; a missing value renders as nothing (AWS leaves it empty).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["MappingError", "MappingSource", "ParameterValue", "compile_parameter"]

_BRACED = re.compile(r"\$\{([^}]+)\}")
_WHOLE = re.compile(r"^\$((?:request|context|stageVariables)\.[^\s$]*|request\.body)$")
_ROOTS = ("request.body", "request.header.", "request.querystring.", "request.path.", "context.", "stageVariables.")


class MappingError(ValueError):
    """A value that names no known source."""


@dataclass(slots=True)
class MappingSource:
    """What one request offers to the expressions; the body is parsed at most once, on first use."""

    body: str
    context: Mapping[str, Any]
    stage_variables: Mapping[str, str]
    headers: Mapping[str, str]         # lowercase names
    query: Mapping[str, str]
    path: Mapping[str, str]
    _parsed: object = None
    _tried: bool = False

    def document(self) -> object:
        if not self._tried:
            self._tried = True
            try:
                self._parsed = orjson.loads(self.body) if self.body else None
            except orjson.JSONDecodeError:
                self._parsed = None
        return self._parsed


def _walk(value: object, parts: list[str]) -> object:
    for part in parts:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class _Ref:
    kind: str          # body, body_path, header, querystring, path, context, stage
    parts: tuple[str, ...]

    def value(self, source: MappingSource) -> object:
        if self.kind == "body":
            return source.body
        if self.kind == "body_path":
            return _walk(source.document(), list(self.parts))
        if self.kind == "context":
            return _walk(source.context, list(self.parts))
        name = self.parts[0]
        table: Mapping[str, str] = {"header": source.headers, "querystring": source.query, "path": source.path,
                                    "stage": source.stage_variables}[self.kind]
        return table.get(name.lower() if self.kind == "header" else name)


def _ref(expression: str) -> _Ref:
    text = expression.strip()
    if text == "request.body":
        return _Ref("body", ())
    if text.startswith("request.body."):
        path = text.removeprefix("request.body.")
        return _Ref("body_path", tuple(p for p in re.split(r"\.|\[(\d+)\]", path) if p))
    for prefix, kind in (("request.header.", "header"), ("request.querystring.", "querystring"),
                         ("request.path.", "path"), ("stageVariables.", "stage"), ("context.", "context")):
        if text.startswith(prefix) and len(text) > len(prefix):
            rest = text.removeprefix(prefix)
            return _Ref(kind, tuple(rest.split(".")) if kind == "context" else (rest,))
    raise MappingError(f"'${text}' is not one of $request.body[.path], $request.header.x, $request.querystring.x, "
                       "$request.path.x, $context.x, $stageVariables.x")


@dataclass(frozen=True, slots=True)
class ParameterValue:
    """A compiled value: literal text and references, in order."""

    source_text: str
    parts: tuple[str | _Ref, ...]

    @property
    def whole(self) -> _Ref | None:
        """The one reference a value consists of (its JSON type is kept for structured parameters)."""
        return self.parts[0] if len(self.parts) == 1 and isinstance(self.parts[0], _Ref) else None

    def render(self, source: MappingSource) -> str:
        return "".join(part if isinstance(part, str) else _text(part.value(source)) for part in self.parts)

    def raw(self, source: MappingSource) -> object:
        """The JSON value of a whole reference (an object stays an object), else the rendered text."""
        whole = self.whole
        return whole.value(source) if whole is not None else self.render(source)


def compile_parameter(text: str) -> ParameterValue:
    """Compile one mapping value; raise MappingError naming a reference to an unknown source."""
    whole = _WHOLE.match(text.strip())
    if whole is not None and "${" not in text:
        return ParameterValue(text, (_ref(whole.group(1)),))
    parts: list[str | _Ref] = []
    last = 0
    for match in _BRACED.finditer(text):
        if match.start() > last:
            parts.append(text[last:match.start()])
        parts.append(_ref(match.group(1)))
        last = match.end()
    if last < len(text):
        parts.append(text[last:])
    return ParameterValue(text, tuple(parts))
