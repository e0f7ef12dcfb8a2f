"""AWS API Gateway mapping templates (Velocity) as AWS runs them, compiled once and rendered in a sandbox; pure.

The engine is airspeed as LocalStack ships it (the `airspeed-ext` distribution, imported as `airspeed`): a
Velocity parser and evaluator with AWS's quirks already in (an undefined `$x` renders as nothing, `$map.put`
answers the previous value, single-quoted strings keep backslashes). wsgw adds what AWS provides on top
(`$input`, `$util`, `$context`, `$stageVariables`; see docs/mapping-templates.md) and the sandbox:

- a template reaches only whitelisted members: map keys, list items and the Velocity/Java methods listed in
  `_METHODS`; a name starting with ``_`` is refused when the template is compiled, so there is no attribute
  walk (``$x.__class__``) and no Python method (``$s.format``) to call;
- ``#include``, ``#parse``, ``#evaluate`` and ``#return`` are refused at compile time: no file reads, no
  templates built from data;
- every ``#foreach`` stops at `Limits.foreach_iterations` (AWS's quota is 1,000), every step of the evaluator
  counts against `Limits.steps` and a wall-clock deadline, and every string, list or output the template
  builds is bounded, so ``#set($s = "$s$s")`` doubling, ``[1..100000000]`` and nested loops fail fast;
- regular expressions given to ``replaceAll``/``matches``/``split`` are refused when a repeated group holds
  another repetition or an alternation (the shapes of catastrophic backtracking), since Python's `re` cannot be
  interrupted.

Every failure is a `TemplateError` whose message names the template position and the problem, never the body.
How it hooks airspeed: after parsing, each node of the tree whose class needs a guard gets the guarded subclass
(same slots, same parse result), so no global state of the library is changed.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote_plus, unquote_plus

import airspeed
import orjson
from airspeed import operators as ops

from wsgw.aws.jsonpath import JsonPathError, compile_jsonpath

__all__ = ["Limits", "Rendered", "Template", "TemplateError", "compile_template"]


class TemplateError(Exception):
    """A template that cannot be compiled or rendered; the message is safe to log (no request data)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds one render stays within; a template that crosses one fails with TemplateError."""

    foreach_iterations: int = 1000  # per #foreach: AWS's quota "Number of iterations in a #foreach ... #end loop"
    steps: int = 200_000  # evaluator steps (lookups, calls, iterations, macro calls) per render
    output_chars: int = 1 << 20  # the rendered text
    value_chars: int = 1 << 20  # any one string or list built while rendering
    seconds: float = 0.05  # wall clock per render
    allocated_chars: int = 16 << 20  # all strings built while rendering, together (keeping many big values)
    macro_depth: int = 32
    template_chars: int = 300 * 1024  # compile time (300 KB: unverified, docs/mapping-templates.md)


DEFAULT_LIMITS: Final = Limits()


@dataclass(slots=True)
class Rendered:
    """A render's text and the overrides the template set in `$context.requestOverride`/`responseOverride`."""

    text: str
    request_override: dict[str, Any]
    response_override: dict[str, Any]


class _Abort(Exception):
    """Raised inside the engine; carries the safe message up through airspeed's wrapping."""


class _Budget:
    __slots__ = ("allocatable", "deadline", "depth", "limits", "steps")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.steps = limits.steps
        self.allocatable = limits.allocated_chars
        self.deadline = time.monotonic() + limits.seconds
        self.depth = 0

    def allocate(self, chars: int) -> None:
        self.allocatable -= chars
        if self.allocatable < 0:
            raise _Abort(f"the template built more than {self.limits.allocated_chars} characters in all")
        if chars > 4096 and time.monotonic() > self.deadline:
            raise _Abort(f"the template ran longer than {self.limits.seconds * 1000:.0f} ms")

    def tick(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps < 0:
            raise _Abort(f"the template took more than {self.limits.steps} steps")
        if self.steps & 63 == 0 and time.monotonic() > self.deadline:
            raise _Abort(f"the template ran longer than {self.limits.seconds * 1000:.0f} ms")


_STATE = threading.local()  # the _Budget of the render running on this thread


def _budget() -> _Budget:
    budget: _Budget | None = getattr(_STATE, "budget", None)
    if budget is None:  # pragma: no cover - elements only run inside Template.render
        raise _Abort("template evaluated outside a render")
    return budget


def _sized(value: object) -> object:
    """Refuse a string or list past the value bound (how doubling and repetition are stopped)."""
    if isinstance(value, str | list | dict):
        budget = _budget()
        if len(value) > budget.limits.value_chars:
            raise _Abort(f"a value grew past {budget.limits.value_chars} characters or items")
        if isinstance(value, str):
            budget.allocate(len(value))
    return value


# --- values as Velocity (Java) shows them --------------------------------------------------------------------


class _JsonList(list[Any]):
    """A list read from JSON ($input.path, $util.parseJson): AWS renders it as JSON, not as Java's [a, b]."""


def _text(value: object) -> str:
    """A value as AWS writes it into the output (Java's toString of the same value)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, _JsonList):
        return orjson.dumps(value).decode()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_text(k)}={_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return ""


def _java_double(value: float) -> str:
    if value.is_integer() and abs(value) < 1e7:
        return f"{value:.1f}"
    return repr(value)


def _from_json(value: object) -> object:
    """JSON-parsed data with lists marked, so they render as AWS renders them."""
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return _JsonList(_from_json(v) for v in value)
    return value


def _copy(value: object) -> object:
    """A private copy of the caller's containers: a template may #set into $context without leaking out."""
    if isinstance(value, dict):
        return {str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


# --- $input and $util ---------------------------------------------------------------------------------------


class _Input:
    """`$input`: the request (or integration response) body and the request parameters."""

    __slots__ = ("_body", "_document", "_params", "_parsed")

    def __init__(self, body: str, params: dict[str, Any]) -> None:
        self._body = body
        self._params = params
        self._parsed = False
        self._document: object = None

    def document(self) -> object:
        if not self._parsed:
            text = self._body
            if not text.strip():
                self._document = {}  # AWS maps an empty body as {} (docs/mapping-templates.md)
            else:
                try:
                    self._document = orjson.loads(text)
                except orjson.JSONDecodeError as exc:
                    raise _Abort(f"Could not parse request body into json: {exc}") from None
            self._parsed = True
        return self._document

    def _find(self, path: object) -> object:
        if not isinstance(path, str):
            raise _Abort("a JSONPath must be a string such as '$.a'")
        try:
            compiled = compile_jsonpath(path)
        except JsonPathError as exc:
            raise _Abort(str(exc)) from None
        return compiled.find(self.document())

    def body(self) -> str:
        return self._body

    def json(self, path: object = "$") -> str:
        found = self._find(path)
        return orjson.dumps("" if found is None else found).decode()

    def path(self, path: object) -> object:
        return _from_json(self._find(path))

    def params(self, name: object = None) -> object:
        if name is None:
            return self._params
        key = _text(name)
        for where in ("path", "querystring", "header"):  # AWS's documented search order
            group = self._params.get(where)
            if isinstance(group, dict):
                if where == "header":
                    for header, value in group.items():
                        if header.lower() == key.lower():
                            return value
                elif key in group:
                    return group[key]
        return ""


_JS_ESCAPES: Final = {
    '"': '\\"',
    "'": "\\'",
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\n": "\\n",
    "\t": "\\t",
    "\f": "\\f",
    "\r": "\\r",
}


def _escape_javascript(value: object) -> str:
    """Java's StringEscapeUtils.escapeJavaScript: quotes, backslash, slash, controls and non-ASCII escaped."""
    out: list[str] = []
    for ch in _text(value):
        if ch in _JS_ESCAPES:
            out.append(_JS_ESCAPES[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            units = ch.encode("utf-16-be")
            for i in range(0, len(units), 2):
                out.append(f"\\u{units[i]:02X}{units[i + 1]:02X}")
    return "".join(out)


class _Util:
    """`$util`: AWS's helper functions for mapping templates."""

    __slots__ = ()

    def escapeJavaScript(self, value: object) -> str:
        return _escape_javascript(value)

    def parseJson(self, value: object) -> object:
        try:
            return _from_json(orjson.loads(_text(value)))
        except orjson.JSONDecodeError as exc:
            raise _Abort(f"$util.parseJson: not JSON ({exc})") from None

    def base64Encode(self, value: object) -> str:
        return base64.b64encode(_text(value).encode()).decode()

    def base64Decode(self, value: object) -> str:
        try:
            return base64.b64decode(_text(value), validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            raise _Abort("$util.base64Decode: not base64") from None

    def urlEncode(self, value: object) -> str:
        # Java's URLEncoder: letters, digits and . - * _ stay, space is '+', everything else %XX (so '~' too).
        return quote_plus(_text(value), safe="*").replace("~", "%7E")

    def urlDecode(self, value: object) -> str:
        return unquote_plus(_text(value))


# --- the whitelist of callable members ----------------------------------------------------------------------


def _regex(pattern: object) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise _Abort("a regular expression must be a string")
    return _compile_regex(pattern)


@lru_cache(maxsize=256)
def _compile_regex(pattern: str) -> re.Pattern[str]:
    if len(pattern) > 1000:
        raise _Abort("a regular expression longer than 1000 characters")
    try:
        compiled = re.compile(pattern)
        tree = re._parser.parse(pattern)  # type: ignore[attr-defined]
    except re.error as exc:
        raise _Abort(f"bad regular expression: {exc.msg}") from None
    if _backtracks(tree.data, repeated=False):
        raise _Abort("regular expression refused: a repeated group holds a repetition or alternation")
    return compiled


_REPEATS: Final = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def _backtracks(items: Iterable[Any], repeated: bool) -> bool:
    """True when a repetition sits inside a repeated group, or an alternation does (exponential backtracking)."""
    for op, arg in items:
        name = str(op)
        if name in _REPEATS:
            if repeated:
                return True
            if _backtracks(arg[2], repeated=True):
                return True
        elif name == "BRANCH":
            if repeated:
                return True
            if any(_backtracks(branch, repeated) for branch in arg[1]):
                return True
        elif name == "SUBPATTERN":
            if _backtracks(arg[3], repeated):
                return True
        elif name in ("ASSERT", "ASSERT_NOT") and _backtracks(arg[1], repeated):
            return True
    return False


def _java_replacement(replacement: object) -> str:
    """Java's replacement syntax ($1, \\$) as Python's (\\g<1>, $)."""
    text = _text(replacement)
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1].replace("\\", "\\\\"))
            i += 2
        elif ch == "$" and i + 1 < len(text) and text[i + 1].isdigit():
            j = i + 1
            while j < len(text) and text[j].isdigit():
                j += 1
            out.append(f"\\g<{text[i + 1 : j]}>")
            i = j
        else:
            out.append("\\\\" if ch == "\\" else ch)
            i += 1
    return "".join(out)


def _substring(s: str, start: object, end: object = None) -> str:
    if not isinstance(start, int) or (end is not None and not isinstance(end, int)):
        raise _Abort("substring takes integer positions")
    return s[start:end]


def _dict_put(d: dict[Any, Any], key: object, value: object) -> object:
    previous = d.get(key)
    d[key] = value
    _sized(d)
    return previous


def _list_add(items: list[Any], value: object) -> bool:
    items.append(value)
    _sized(items)
    return True


def _index(items: list[Any], i: object) -> object:
    if not isinstance(i, int) or not -len(items) <= i < len(items):
        return None
    return items[i]


_Method = Callable[..., object]

_STR_METHODS: Final[dict[str, _Method]] = {
    "length": len,
    "isEmpty": lambda s: not s,
    "contains": lambda s, x: _text(x) in s,
    "startsWith": lambda s, x: s.startswith(_text(x)),
    "endsWith": lambda s, x: s.endswith(_text(x)),
    "indexOf": lambda s, x: s.find(_text(x)),
    "lastIndexOf": lambda s, x: s.rfind(_text(x)),
    "substring": _substring,
    "charAt": lambda s, i: _index(list(s), i),
    "toLowerCase": str.lower,
    "toUpperCase": str.upper,
    "trim": str.strip,
    "equals": lambda s, x: s == x,
    "equalsIgnoreCase": lambda s, x: isinstance(x, str) and s.lower() == x.lower(),
    "concat": lambda s, x: _sized(s + _text(x)),
    "replace": lambda s, a, b: _sized(s.replace(_text(a), _text(b))) if _text(a) else s,
    "replaceAll": lambda s, p, r: _sized(_regex(p).sub(_java_replacement(r), s)),
    "replaceFirst": lambda s, p, r: _sized(_regex(p).sub(_java_replacement(r), s, count=1)),
    "matches": lambda s, p: _regex(p).fullmatch(s) is not None,
    "split": lambda s, p: _regex(p).split(s),
    "toString": lambda s: s,
}
_LIST_METHODS: Final[dict[str, _Method]] = {
    "size": len,
    "isEmpty": lambda v: not v,
    "get": _index,
    "contains": lambda v, x: x in v,
    "indexOf": lambda v, x: v.index(x) if x in v else -1,
    "add": _list_add,
    "toString": _text,
}
_DICT_METHODS: Final[dict[str, _Method]] = {
    "size": len,
    "isEmpty": lambda d: not d,
    "get": lambda d, k: d.get(k),
    "containsKey": lambda d, k: k in d,
    "containsValue": lambda d, v: v in d.values(),
    "keySet": lambda d: list(d),
    "values": lambda d: list(d.values()),
    "entrySet": lambda d: [{"key": k, "value": v} for k, v in d.items()],
    "put": _dict_put,
    "putAll": lambda d, other: d.update(other) if isinstance(other, dict) else None,
    "remove": lambda d, k: d.pop(k, None),
    "toString": _text,
}
_SCALAR_METHODS: Final[dict[str, _Method]] = {
    "toString": _text,
    "equals": lambda a, b: a == b,
    "intValue": lambda n: int(n),
    "doubleValue": lambda n: float(n),
}
_INPUT_METHODS: Final[dict[str, _Method]] = {
    "json": _Input.json,
    "path": _Input.path,
    "params": _Input.params,
}
_INPUT_PROPERTIES: Final[dict[str, _Method]] = {"body": _Input.body}
_UTIL_METHODS: Final[dict[str, _Method]] = {
    name: getattr(_Util, name)
    for name in ("escapeJavaScript", "parseJson", "base64Encode", "base64Decode", "urlEncode", "urlDecode")
}


def _methods(obj: object) -> Mapping[str, _Method]:
    if isinstance(obj, str):
        return _STR_METHODS
    if isinstance(obj, list):
        return _LIST_METHODS
    if isinstance(obj, dict):
        return _DICT_METHODS
    if isinstance(obj, int | float):
        return _SCALAR_METHODS
    if isinstance(obj, _Input):
        return _INPUT_METHODS
    if isinstance(obj, _Util):
        return _UTIL_METHODS
    return {}


# --- guarded element classes --------------------------------------------------------------------------------


class _SafeNameOrCall(ops.NameOrCall):  # type: ignore[misc]
    """`$name`, `$obj.name`, `$obj.name(args)`, `$obj.name[i]` through the whitelist only."""

    def calculate(self, current_object: Any, loader: Any, top_namespace: Any) -> Any:
        _budget().tick()
        name: str = self.name
        result: Any = None
        if isinstance(current_object, ops.LocalNamespace):
            try:
                result = current_object[name]
            except KeyError:
                result = None
            if isinstance(result, ops._FunctionDefinition):
                return self._call_definition(result, loader, top_namespace)
        elif self.parameters is not None:
            method = _methods(current_object).get(name)
            if method is None:
                raise _Abort(f"no method {name}() on a {_kind(current_object)}")
            args = self.parameters.calculate(top_namespace, loader)
            try:
                result = method(current_object, *args)
            except TypeError:
                raise _Abort(f"{name}() called with {len(args)} arguments") from None
            return _sized(result)
        elif isinstance(current_object, dict):
            result = current_object.get(name)
        elif isinstance(current_object, _Input) and name in _INPUT_PROPERTIES:
            result = _INPUT_PROPERTIES[name](current_object)
        if self.index is not None and result is not None:
            index = self.index.calculate(top_namespace, loader)
            if isinstance(result, dict):
                result = result.get(index)
            elif isinstance(result, list | str):
                result = _index(list(result), index) if isinstance(result, str) else _index(result, index)
            else:
                result = None
        return result

    def _call_definition(self, definition: Any, loader: Any, namespace: Any) -> str:
        params = self.parameters.calculate(namespace, loader) if self.parameters else []
        stream = ops.StoppableStream()
        definition.execute_function(stream, namespace, params, loader)
        return str(_sized(stream.getvalue()))


def _kind(obj: object) -> str:
    if isinstance(obj, _Input):
        return "$input"
    if isinstance(obj, _Util):
        return "$util"
    if obj is None:
        return "null value"
    return {str: "string", list: "list", dict: "map", bool: "boolean"}.get(type(obj), "value")


class _SafeVariableExpression(ops.VariableExpression):  # type: ignore[misc]
    """AWS renders a missing value as nothing and tests it as false (airspeed alone treats null as true)."""

    def calculate(self, namespace: Any, loader: Any, global_namespace: Any = None) -> Any:
        value = super().calculate(namespace, loader, global_namespace)
        return "" if value is None else value


class _SafeFormalReference(ops.FormalReference):  # type: ignore[misc]
    """Writes a value as Java's toString would (true, {a=1}, [1, 2]), never Python's repr."""

    def evaluate_raw(self, stream: Any, namespace: Any, loader: Any) -> None:
        value = self.expression.calculate(namespace, loader) if self.expression is not None else None
        if (value is None or value == "") and self.alternate is not None:
            value = self.alternate.calculate(namespace, loader)
        stream.write(_text(value))


class _SafeForeach(ops.ForeachDirective):  # type: ignore[misc]
    def evaluate_raw(self, stream: Any, namespace: Any, loader: Any) -> None:
        budget = _budget()
        cap = budget.limits.foreach_iterations
        iterable = self.value.calculate(namespace, loader)
        if iterable is None or iterable == "":
            return
        if isinstance(iterable, dict):
            items: list[Any] = list(iterable)
        elif isinstance(iterable, list | tuple | range):
            items = list(iterable[: cap + 1])
        else:
            raise _Abort(f"#foreach over a {_kind(iterable)}: not a list or map")
        if len(items) > cap:
            raise _Abort(f"#foreach ran past {cap} iterations")
        length = len(items)
        for counter, item in enumerate(items, start=1):
            budget.tick()
            local = ops.LocalNamespace(namespace)
            local["velocityCount"] = counter
            local["velocityHasNext"] = counter < length
            local["foreach"] = {
                "count": counter,
                "index": counter - 1,
                "hasNext": counter < length,
                "first": counter == 1,
                "last": counter == length,
            }
            local[self.loop_var_name] = item
            self.block.evaluate(stream, local, loader)


class _SafeRange(ops.Range):  # type: ignore[misc]
    def calculate(self, namespace: Any, loader: Any) -> list[int]:
        low = self.value1.calculate(namespace, loader)
        high = self.value2.calculate(namespace, loader)
        if not isinstance(low, int) or not isinstance(high, int):
            raise _Abort("a range [a..b] needs integers")
        limit = _budget().limits.foreach_iterations
        if abs(high - low) >= limit:
            raise _Abort(f"a range [a..b] longer than {limit}")
        _budget().tick(abs(high - low) + 1)
        return list(range(low, high + 1)) if low <= high else list(range(low, high - 1, -1))


class _SafeInterpolatedString(ops.InterpolatedStringLiteral):  # type: ignore[misc]
    def calculate(self, namespace: Any, loader: Any) -> Any:
        stream = _CappedStream(_budget().limits, value=True)
        self.block.evaluate(stream, namespace, loader)
        return _sized(stream.getvalue())


class _SafeMacroCall(ops.MacroCall):  # type: ignore[misc]
    def evaluate_raw(self, stream: Any, namespace: Any, loader: Any) -> None:
        budget = _budget()
        budget.tick()
        if budget.depth >= budget.limits.macro_depth:
            raise _Abort(f"macros nested deeper than {budget.limits.macro_depth}")
        budget.depth += 1
        try:
            super().evaluate_raw(stream, namespace, loader)
        finally:
            budget.depth -= 1


def _arithmetic(apply: Callable[[Any, Any], Any], symbol: str) -> Callable[[Any, Any], Any]:
    def guarded(a: Any, b: Any) -> Any:
        _budget().tick()
        if symbol == "+" and (isinstance(a, str) or isinstance(b, str)):
            return _sized(_text(a) + _text(b))  # Velocity joins a string and a number as text
        if symbol in "*/%" and (isinstance(a, str | list) or isinstance(b, str | list)):
            raise _Abort(f"'{symbol}' needs numbers")
        try:
            return _sized(apply(a, b))
        except ZeroDivisionError:
            raise _Abort("division by zero") from None
        except TypeError:
            raise _Abort(f"'{symbol}' cannot combine a {_kind(a)} and a {_kind(b)}") from None

    return guarded


_SWAPS: Final[dict[type, type]] = {
    ops.NameOrCall: _SafeNameOrCall,
    ops.VariableExpression: _SafeVariableExpression,
    ops.FormalReference: _SafeFormalReference,
    ops.ForeachDirective: _SafeForeach,
    ops.Range: _SafeRange,
    ops.InterpolatedStringLiteral: _SafeInterpolatedString,
    ops.MacroCall: _SafeMacroCall,
}
_REFUSED: Final[dict[type, str]] = {
    ops.IncludeDirective: "#include",
    ops.ParseDirective: "#parse",
    ops.EvaluateDirective: "#evaluate",
    ops.ReturnDirective: "#return",
    ops.UserDefinedDirective: "user-defined directives",
}


class _CappedStream(ops.StoppableStream):  # type: ignore[misc]
    """The output (or a string being interpolated), bounded."""

    def __init__(self, limits: Limits, value: bool = False) -> None:
        super().__init__()
        self.size = 0
        self.value = value
        self.cap = limits.value_chars if value else limits.output_chars

    def write(self, s: str) -> None:
        if self.stop:
            return
        self.size += len(s)
        if self.size > self.cap:
            raise _Abort(f"{'a value' if self.value else 'the output'} grew past {self.cap} characters")
        super().write(s)


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _guard(root: Any, text: str) -> None:
    """Refuse what a template may not do and give each node that needs one its guarded class."""
    nodes: list[Any] = []
    stack: list[Any] = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ops._Element):
            nodes.append(node)
            stack.extend(vars(node).values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(getattr(node, "__self__", None), ops._Element):
            stack.append(node.__self__)  # a child kept only as a bound method (ParenthesizedExpression's)
    for node in nodes:
        where = _position(text, node.start)
        for refused, what in _REFUSED.items():
            if isinstance(node, refused):
                raise TemplateError(f"{what} is not allowed in a mapping template ({where})")
        names = [getattr(node, attr, "") for attr in ("name", "root_term", "loop_var_name", "function_name")]
        if isinstance(node, ops.DotDictAccessTerm):
            names.append(node.value)
        for name in names:
            if isinstance(name, str) and name.startswith("_"):
                raise TemplateError(f"names starting with '_' are not allowed ({name!r} at {where})")
        swap = _SWAPS.get(type(node))
        if swap is not None:
            node.__class__ = swap
        if type(node) is ops.BinaryOperator:
            symbol = node.my_text().strip()
            node.apply_to = _arithmetic(node.apply_to, symbol)
    # airspeed binds some nodes' calculate/evaluate to a child's method while parsing: rebind to the guarded one.
    for node in nodes:
        for attr in ("calculate", "evaluate"):
            bound = vars(node).get(attr)
            target = getattr(bound, "__self__", None)
            if isinstance(target, ops._Element):
                setattr(node, attr, getattr(target, bound.__func__.__name__))


class Template:
    """A compiled mapping template; :meth:`render` runs per message."""

    __slots__ = ("_engine", "_static", "limits", "reads", "source")

    def __init__(self, source: str, engine: Any, limits: Limits) -> None:
        self.source = source
        self._engine = engine
        self.limits = limits
        # no reference and no directive: Velocity writes the text as it is (a MOCK's fixed answer, every message)
        self._static = "$" not in source and "#" not in source
        # What the template can reach: a name Velocity never sees in the source cannot be referred to (no
        # #evaluate, no building names from data), so an unread context, parameter map or stage is not copied.
        self.reads = frozenset(name for name in ("context", "params", "stageVariables") if name in source)

    def __eq__(self, other: object) -> bool:
        """Same source and limits: the same template (a reload keeps a deployment whose config is unchanged)."""
        return isinstance(other, Template) and (self.source, self.limits) == (other.source, other.limits)

    def __hash__(self) -> int:
        return hash((self.source, self.limits))

    def render(
        self,
        input_body: str | bytes = "",
        context: Mapping[str, Any] | None = None,
        stage_variables: Mapping[str, str] | None = None,
        params: Mapping[str, Mapping[str, str]] | None = None,
    ) -> str:
        """The rendered text; raise TemplateError when the template fails or crosses a limit."""
        return self.render_result(input_body, context, stage_variables, params).text

    def render_result(
        self,
        input_body: str | bytes = "",
        context: Mapping[str, Any] | None = None,
        stage_variables: Mapping[str, str] | None = None,
        params: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Rendered:
        """The rendered text and the request/response overrides the template set in `$context`."""
        if self._static:
            return Rendered(self.source, {"header": {}, "path": {}, "querystring": {}}, {"header": {}})
        body = input_body.decode("utf-8", "replace") if isinstance(input_body, bytes) else input_body
        reads = self.reads
        ctx = _context(context) if "context" in reads else {}
        request_override: dict[str, Any] = {"header": {}, "path": {}, "querystring": {}}
        response_override: dict[str, Any] = {"header": {}}
        ctx["requestOverride"] = request_override
        ctx["responseOverride"] = response_override
        all_params: dict[str, Any] = {"path": {}, "querystring": {}, "header": {}}
        if "params" in reads:
            all_params.update({str(k): _copy(v) for k, v in (params or {}).items()})
        namespace = {
            "input": _Input(body, all_params),
            "util": _UTIL,
            "context": ctx,
            "stageVariables": _copy(dict(stage_variables or {})) if "stageVariables" in reads else {},
        }
        stream = _CappedStream(self.limits)
        previous = getattr(_STATE, "budget", None)
        _STATE.budget = _Budget(self.limits)
        try:
            self._engine.merge_to(namespace, stream)
        except airspeed.TemplateError as exc:
            raise TemplateError(self._explain(exc)) from None
        except _Abort as exc:
            raise TemplateError(str(exc)) from None
        except RecursionError:
            raise TemplateError("the template nests too deeply") from None
        finally:
            _STATE.budget = previous
        return Rendered(stream.getvalue(), request_override, response_override)

    def _explain(self, exc: Exception) -> str:
        cause: BaseException | None = exc
        element = getattr(exc, "element", None)
        while cause is not None and not isinstance(cause, _Abort | RecursionError):
            element = getattr(cause, "element", element)
            cause = cause.__cause__
        where = f" at {_position(self.source, element.start)}" if element is not None else ""
        if isinstance(cause, _Abort):
            return f"mapping template{where}: {cause}"
        if isinstance(cause, RecursionError):
            return f"mapping template{where}: nested too deeply"
        inner = exc.__cause__
        kind = type(inner).__name__ if inner is not None else "error"
        return f"mapping template{where}: {kind}"


_UTIL: Final = _Util()


def _context(context: Mapping[str, Any] | None) -> dict[str, Any]:
    ctx = _copy(dict(context or {}))
    assert isinstance(ctx, dict)
    authorizer = ctx.get("authorizer")
    if isinstance(authorizer, dict):  # AWS: "$context.authorizer.numKey returns the "1" string"
        ctx["authorizer"] = {
            k: v if isinstance(v, dict | str) or v is None else _text(v) for k, v in authorizer.items()
        }
    return ctx


def compile_template(text: str, limits: Limits = DEFAULT_LIMITS) -> Template:
    """Parse and guard a template once (at start and for `wsgw check`); raise TemplateError when it is invalid."""
    if not isinstance(text, str):
        raise TemplateError("a mapping template must be a string")
    if len(text) > limits.template_chars:
        raise TemplateError(f"a mapping template larger than {limits.template_chars} characters")
    engine = airspeed.Template(text)
    try:
        engine.ensure_compiled()
    except airspeed.TemplateSyntaxError as exc:
        raise TemplateError(f"mapping template syntax error: {exc}") from None
    except RecursionError:
        raise TemplateError("mapping template nests too deeply to parse") from None
    except Exception as exc:  # airspeed reports some malformed input as a bare error
        raise TemplateError(f"mapping template syntax error: {type(exc).__name__}") from None
    _guard(engine.root_element, text)
    return Template(text, engine, limits)
