"""Route selection expressions: compile once at start, evaluate per message.

A WebSocket API picks the route of each message by evaluating its route selection
expression against the message's JSON body, as AWS API Gateway does:

- ``$request.body.action`` - one unwrapped variable (the common case);
- ``${request.body.service}/${request.body.action}`` - variables in braces mixed with literals;
- ``action`` or ``\\$default`` - a static value (``\\$`` is a literal dollar sign);
- paths go through nested objects (``$request.body.a.b``) and array items (``$request.body.items[0]``).

Evaluation (see docs/aws-contract.md for the AWS sources):

- a body that is not JSON, or not a JSON object, selects nothing (AWS sends non-JSON
  messages to ``$default``);
- a variable whose path is missing, null, or not a scalar resolves to ``""`` inside a
  template, as AWS documents; a result that is ``""`` as a whole selects nothing;
- strings are used as they are, booleans as ``true``/``false``, numbers as their text.

``None`` from :meth:`RouteSelector.select` means "no route key": the caller falls back to
``$default``. Matching a key against configured routes is the caller's job.
"""

from __future__ import annotations

from typing import Final

import orjson

__all__ = ["RouteSelector", "SelectionExpressionError", "compile_selection"]

_PREFIX: Final = "request.body"
# Characters that end an unwrapped ``$request.body...`` variable inside a template.
_UNWRAPPED_STOP: Final = frozenset("${}/\\ \t\r\n")

PathKey = str | int
Path = tuple[PathKey, ...]
Part = str | Path


class SelectionExpressionError(ValueError):
    """A route selection expression that cannot be compiled; the message names it and the fix."""


def _fail(expression: str, problem: str) -> SelectionExpressionError:
    return SelectionExpressionError(
        f"route selection expression {expression!r}: {problem}. "
        "Use $request.body.<field> (e.g. $request.body.action), nested fields "
        "($request.body.a.b, $request.body.items[0]) or a template such as "
        "${request.body.service}/${request.body.action}"
    )


def _parse_path(expression: str, variable: str) -> Path:
    """Turn ``request.body.a.b[0]`` into ``("a", "b", 0)``."""
    if variable != _PREFIX and not variable.startswith((_PREFIX + ".", _PREFIX + "[")):
        raise _fail(
            expression,
            f"${variable} is not supported - WebSocket route selection reads only the "
            "message body ($request.body...)",
        )
    rest = variable[len(_PREFIX) :]
    if not rest:
        raise _fail(expression, "$request.body needs a field after it")
    keys: list[PathKey] = []
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        if ch == ".":
            j = i + 1
            while j < n and rest[j] not in ".[]":
                j += 1
            key = rest[i + 1 : j]
            if not key:
                raise _fail(expression, f"empty field name in ${variable}")
            if key == "*":
                raise _fail(expression, "wildcards (*) are not supported")
            keys.append(key)
            i = j
        elif ch == "[":
            close = rest.find("]", i)
            if close < 0:
                raise _fail(expression, f"unclosed '[' in ${variable}")
            inner = rest[i + 1 : close].strip()
            if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
                keys.append(inner[1:-1])
            elif inner.isdigit() and inner.isascii():
                keys.append(int(inner))
            else:
                raise _fail(
                    expression, f"[{inner}] in ${variable} is not an array index or a quoted field name"
                )
            i = close + 1
        else:
            raise _fail(expression, f"unexpected {ch!r} in ${variable}")
    return tuple(keys)


def _parse(expression: str) -> list[Part]:
    """Split an expression into literal strings and compiled paths."""
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    n = len(expression)
    while i < n:
        ch = expression[i]
        if ch == "\\" and i + 1 < n and expression[i + 1] == "$":
            literal.append("$")
            i += 2
            continue
        if ch != "$":
            literal.append(ch)
            i += 1
            continue
        if literal:
            parts.append("".join(literal))
            literal.clear()
        if i + 1 < n and expression[i + 1] == "{":
            close = expression.find("}", i + 2)
            if close < 0:
                raise _fail(expression, "'${' is never closed with '}'")
            variable = expression[i + 2 : close].strip()
            i = close + 1
        else:
            j = i + 1
            while j < n and expression[j] not in _UNWRAPPED_STOP:
                j += 1
            variable = expression[i + 1 : j]
            i = j
        if not variable:
            raise _fail(expression, "a '$' with no variable after it (write \\$ for a literal dollar sign)")
        parts.append(_parse_path(expression, variable))
    if literal:
        parts.append("".join(literal))
    return parts


def _lookup(obj: object, path: Path) -> object:
    """Follow ``path`` through dicts and lists; None when any step is missing."""
    for key in path:
        if isinstance(key, str):
            if type(obj) is not dict:
                return None
            obj = obj.get(key)
        else:
            if type(obj) is not list or key >= len(obj):
                return None
            obj = obj[key]
    return obj


def _render(value: object) -> str | None:
    """Text of a JSON scalar as AWS stringifies it; None for null, arrays and objects."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return None


class RouteSelector:
    """A compiled route selection expression; :meth:`select` runs once per message."""

    __slots__ = ("_parts", "_path", "expression")

    def __init__(self, expression: str, parts: list[Part]) -> None:
        self.expression = expression
        # Fast path: the whole expression is one variable.
        self._path: Path | None = parts[0] if len(parts) == 1 and isinstance(parts[0], tuple) else None
        self._parts: tuple[Part, ...] = tuple(parts)

    def __repr__(self) -> str:
        return f"RouteSelector({self.expression!r})"

    @property
    def paths(self) -> tuple[Path, ...]:
        """The body paths this expression reads, e.g. ``(("action",),)``."""
        return tuple(p for p in self._parts if isinstance(p, tuple))

    def select(self, body: bytes | str) -> str | None:
        """Route key of a raw message body, or None (fall back to ``$default``)."""
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return self.select_parsed(obj)

    def select_parsed(self, obj: object) -> str | None:
        """Route key of an already parsed JSON body, or None."""
        if type(obj) is not dict:
            return None
        path = self._path
        if path is not None:
            key = _render(_lookup(obj, path))
            return key or None
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(_render(_lookup(obj, part)) or "")
        return "".join(out) or None


def compile_selection(expression: str) -> RouteSelector:
    """Compile a route selection expression; raise SelectionExpressionError when it is invalid."""
    if not isinstance(expression, str):
        raise SelectionExpressionError(
            f"route selection expression {expression!r} must be a string such as $request.body.action"
        )
    if not expression.strip():
        raise _fail(expression, "it is empty")
    return RouteSelector(expression, _parse(expression))
