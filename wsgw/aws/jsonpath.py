"""The JSONPath subset AWS mapping templates use in `$input.json(x)` and `$input.path(x)`, pure.

AWS evaluates these with Jayway JsonPath (docs/mapping-templates.md). wsgw reads the forms AWS's examples use:
``$`` (the whole body), ``$.a.b``, ``$['a']`` / ``$["a"]``, ``$.a[0]``, ``$.a[-1]`` (from the end) and the
wildcards ``$.a[*]`` / ``$.a.*``. A definite path yields its value (None when any step is missing); a path with a
wildcard yields the list of every match, as Jayway does. Deep scan (``..``), filters (``[?(...)]``), slices and
unions are refused with a message naming them, so a template never silently reads something else.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

__all__ = ["JsonPath", "JsonPathError", "compile_jsonpath"]

_WILDCARD: Final = object()  # one step that matches every member of an object or array
Step = str | int | object


class JsonPathError(ValueError):
    """A JSONPath expression wsgw cannot evaluate; the message names the expression and the problem."""


class JsonPath:
    """A compiled path; :meth:`find` runs once per evaluation."""

    __slots__ = ("definite", "expression", "steps")

    def __init__(self, expression: str, steps: tuple[Step, ...]) -> None:
        self.expression = expression
        self.steps = steps
        self.definite = not any(step is _WILDCARD for step in steps)

    def find(self, document: object) -> object:
        """The value at this path (definite path) or the list of matches (wildcards)."""
        if self.definite:
            current = document
            for step in self.steps:
                current = _child(current, step)
                if current is None:
                    return None
            return current
        matches: list[object] = [document]
        for step in self.steps:
            following: list[object] = []
            for item in matches:
                if step is _WILDCARD:
                    if isinstance(item, dict):
                        following.extend(item.values())
                    elif isinstance(item, list):
                        following.extend(item)
                else:
                    found = _child(item, step)
                    if found is not None:
                        following.append(found)
            matches = following
        return matches


def _child(node: object, step: Step) -> object:
    if isinstance(step, str):
        return node.get(step) if isinstance(node, dict) else None
    if isinstance(step, int) and isinstance(node, list):
        index = step + len(node) if step < 0 else step
        return node[index] if 0 <= index < len(node) else None
    return None


def _fail(expression: str, problem: str) -> JsonPathError:
    shown = expression if len(expression) <= 80 else expression[:77] + "..."
    return JsonPathError(f"JSONPath {shown!r}: {problem}; use $, $.a.b, $['a'], $.a[0] or $.a[*]")


@lru_cache(maxsize=512)
def compile_jsonpath(expression: str) -> JsonPath:
    """Compile a JSONPath (cached: templates pass the same literal paths on every message)."""
    text = expression.strip()
    if not text.startswith("$"):
        raise _fail(expression, "must start with $")
    steps: list[Step] = []
    i, n = 1, len(text)
    while i < n:
        ch = text[i]
        if ch == ".":
            if text.startswith("..", i):
                raise _fail(expression, "deep scan (..) is not supported")
            j = i + 1
            while j < n and text[j] not in ".[":
                j += 1
            name = text[i + 1 : j].strip()
            if not name:
                raise _fail(expression, "empty field name")
            if name.endswith(")"):
                raise _fail(expression, f"function {name} is not supported")
            steps.append(_WILDCARD if name == "*" else name)
            i = j
        elif ch == "[":
            close = _closing_bracket(text, i)
            if close < 0:
                raise _fail(expression, "unclosed '['")
            steps.append(_bracket(expression, text[i + 1 : close].strip()))
            i = close + 1
        elif ch.isspace():
            i += 1
        else:
            raise _fail(expression, f"unexpected {ch!r}")
    return JsonPath(expression, tuple(steps))


def _closing_bracket(text: str, start: int) -> int:
    """Index of the ']' closing the '[' at start, skipping quoted names (which may hold ']')."""
    i = start + 1
    quote = ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "]":
            return i
        i += 1
    return -1


def _bracket(expression: str, inner: str) -> Step:
    if inner == "*":
        return _WILDCARD
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        body = inner[1:-1]
        if inner[0] in body.replace("\\" + inner[0], ""):
            raise _fail(expression, "unions of names are not supported")
        return body.replace("\\" + inner[0], inner[0])
    signless = inner[1:] if inner.startswith("-") else inner
    if signless.isdigit() and signless.isascii():
        return int(inner)
    if inner.startswith("?"):
        raise _fail(expression, "filters are not supported")
    raise _fail(expression, f"[{inner}] is not an index, a quoted name or *")
