"""Authorizer results: parse and validate them, evaluate their IAM policy against a method ARN, cache them.

Pure: no I/O, no asyncio. The authorizers layer calls a REQUEST authorizer, hands its return value to
:func:`parse_authorizer_response` (or :func:`parse_simple_response` for the HTTP front), stores the
:class:`AuthorizerDecision` in a :class:`DecisionCache` keyed by the identity-source values, and asks
:meth:`AuthorizerDecision.evaluate` for every method ARN it needs. The AWS rules followed here, with their
sources, are in ``docs/policy.md``.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, TypeAlias

__all__ = [
    "AUTHORIZER_RESULT_MAX_BYTES",
    "INVOKE_ACTION",
    "AuthorizerDecision",
    "AuthorizerResponseError",
    "ContextValue",
    "DecisionCache",
    "JsonValue",
    "Statement",
    "parse_authorizer_response",
    "parse_simple_response",
]

#: AWS's WebSocket quota "Lambda authorizer result size": 8 KB, not adjustable.
AUTHORIZER_RESULT_MAX_BYTES = 8 * 1024

#: The action API Gateway checks an authorizer policy for.
INVOKE_ACTION = "execute-api:Invoke"

#: A JSON value, as an HTTP API authorizer may put in ``context`` (arrays and objects allowed there).
JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
#: What a REST/WebSocket authorizer may put in ``context``: flat strings, numbers and booleans only.
ContextValue: TypeAlias = str | int | float | bool

Effect = Literal["Allow", "Deny"]

_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource"})
_RESERVED_CONTEXT_KEYS = frozenset({"principalId", "integrationLatency"})
_FLAT_RULE = "values must be string, number or boolean"


class AuthorizerResponseError(ValueError):
    """The authorizer returned something AWS would refuse (AWS answers 500); the message names the field."""


# --------------------------------------------------------------------------- wildcard matching


class _Glob:
    """One IAM wildcard pattern compiled to a bit-parallel NFA (shift-and).

    IAM: ``?`` is any one character and ``*`` any run of characters within an ARN segment (the parts
    between colons), slashes included; a ``*`` that ends a segment may also run across colons. Actions
    have no segments, so there ``*`` is simply any run. Matching costs O(len(text) * len(pattern) / 64)
    with no backtracking, so a hostile pattern such as ``*a*a*a*a*b`` cannot stall the event loop
    (a backtracking regex needs seconds for that against a 200-character ARN).
    """

    __slots__ = ("_colon_other", "_final", "_literal", "_masks", "_other", "_stars", "fold_case", "pattern")

    def __init__(self, pattern: str, *, segment_aware: bool, fold_case: bool) -> None:
        self.pattern = pattern
        self.fold_case = fold_case
        text = pattern.lower() if fold_case else pattern
        # No wildcard at all (the usual `"Resource": event["methodArn"]`): a string comparison does.
        self._literal = None if "*" in text or "?" in text else text
        literal: dict[str, int] = {}
        any_char = no_colon = stars = 0  # bit j set: token j accepts that class / is a star
        j, i, n = 0, 0, len(text)
        while i < n:
            ch, bit = text[i], 1 << j
            if ch == "*":
                while i + 1 < n and text[i + 1] == "*":  # `**` means the same as `*`
                    i += 1
                ends_segment = i + 1 == n or text[i + 1] == ":"
                stars |= bit
                if not segment_aware or ends_segment:
                    any_char |= bit
                else:
                    no_colon |= bit
            elif ch == "?":
                if segment_aware:
                    no_colon |= bit
                else:
                    any_char |= bit
            else:
                literal[ch] = literal.get(ch, 0) | bit
            i += 1
            j += 1
        self._stars = stars
        self._final = 1 << j
        self._other = any_char | no_colon  # mask for a character that appears nowhere in the pattern
        self._colon_other = any_char
        self._masks = {
            ch: bits | any_char | (no_colon if ch != ":" else 0) for ch, bits in literal.items()
        }

    def match(self, text: str) -> bool:
        """True when the whole of ``text`` matches the pattern."""
        if self.fold_case:
            text = text.lower()
        if self._literal is not None:
            return text == self._literal
        stars, masks, other = self._stars, self._masks, self._other
        state = 1 | ((1 & stars) << 1)  # at token 0; a leading star may also match nothing
        for ch in text:
            accepted = state & masks.get(ch, self._colon_other if ch == ":" else other)
            state = ((accepted & ~stars) << 1) | (accepted & stars)
            state |= (state & stars) << 1  # a star may stop here (stars never follow stars)
            if not state:
                return False
        return bool(state & self._final)


@lru_cache(maxsize=4096)
def _resource_glob(pattern: str) -> _Glob:
    """Resource ARNs are case-sensitive and wildcards respect ARN segments."""
    return _Glob(pattern, segment_aware=True, fold_case=False)


@lru_cache(maxsize=1024)
def _action_glob(pattern: str) -> _Glob:
    """IAM action prefixes and names are case-insensitive."""
    return _Glob(pattern, segment_aware=False, fold_case=True)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Statement:
    """One policy statement, with its Action/Resource patterns compiled once at parse time."""

    effect: Effect
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_action: bool = False  # the patterns came from NotAction: the statement applies to other actions
    not_resource: bool = False  # likewise for NotResource
    _action_globs: tuple[_Glob, ...] = field(init=False, repr=False, compare=False)
    _resource_globs: tuple[_Glob, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.effect not in ("Allow", "Deny"):
            raise ValueError(f"effect must be 'Allow' or 'Deny', not {self.effect!r}")
        object.__setattr__(self, "_action_globs", tuple(_action_glob(p) for p in self.actions))
        object.__setattr__(self, "_resource_globs", tuple(_resource_glob(p) for p in self.resources))

    def applies_to(self, method_arn: str, action: str) -> bool:
        """True when this statement covers ``action`` on ``method_arn`` (whatever its effect)."""
        action_hit = any(glob.match(action) for glob in self._action_globs)
        if action_hit == self.not_action:
            return False
        resource_hit = any(glob.match(method_arn) for glob in self._resource_globs)
        return resource_hit != self.not_resource


@dataclass(frozen=True, slots=True)
class AuthorizerDecision:
    """A parsed, validated authorizer response: who the caller is, what it may invoke, what to pass on."""

    principal_id: str | None
    statements: tuple[Statement, ...]
    context: dict[str, JsonValue]
    usage_identifier_key: str | None = None
    simple: bool = False     # an HTTP API simple response: its yes/no holds for every ARN (never for $connect)
    size_bytes: int = 0      # the response's compact JSON size: what a cache entry for it costs

    def evaluate(self, method_arn: str, action: str = INVOKE_ACTION) -> bool:
        """IAM evaluation: a matching Deny wins, else a matching Allow allows, else implicit deny."""
        allowed = False
        for statement in self.statements:
            if statement.applies_to(method_arn, action):
                if statement.effect == "Deny":
                    return False
                allowed = True
        return allowed

    def authorizer_context(
        self, integration_latency_ms: int, *, stringify_values: bool = False
    ) -> dict[str, object]:
        """What later events carry as ``requestContext.authorizer``.

        ``principalId`` and ``integrationLatency`` are set by the gateway, so a context key of the same
        name does not override them. ``stringify_values`` renders numbers and booleans the way REST API
        Lambda proxy events show them ("1", "true"); see docs/policy.md for what is known about WebSocket.
        """
        out: dict[str, object] = {"principalId": self.principal_id}
        for key, value in self.context.items():
            if key not in _RESERVED_CONTEXT_KEYS:
                out[key] = _stringify(value) if stringify_values else value
        out["integrationLatency"] = integration_latency_ms
        return out


def _stringify(value: JsonValue) -> JsonValue:
    """Render a flat value as API Gateway's REST proxy does (booleans lower-case, numbers as JSON)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return value


# --------------------------------------------------------------------------- parsing


def _type_name(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _case_hint(mapping: Mapping[str, object], wanted: str) -> str:
    """A hint naming a key that differs from ``wanted`` only by case (keys are case-sensitive)."""
    for key in mapping:
        if isinstance(key, str) and key != wanted and key.lower() == wanted.lower():
            return f' (found "{key}": keys are case-sensitive, use "{wanted}")'
    return ""


def _optional_string(result: Mapping[str, object], key: str) -> str | None:
    value = result.get(key)
    if value is None or isinstance(value, str):
        return value
    raise AuthorizerResponseError(f"{key}: must be a string, not {_type_name(value)}")


def _string_list(value: object, where: str) -> tuple[str, ...]:
    """Action/Resource values: a string or a non-empty list of strings."""
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, list | tuple):
        items = list(value)
        if not items:
            raise AuthorizerResponseError(f"{where}: must not be an empty list")
    else:
        raise AuthorizerResponseError(
            f"{where}: must be a string or a list of strings, not {_type_name(value)}"
        )
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise AuthorizerResponseError(f"{where}[{index}]: must be a non-empty string")
    return tuple(str(item) for item in items)


def _either(raw: Mapping[str, object], key: str, not_key: str, where: str) -> tuple[tuple[str, ...], bool]:
    """Read exactly one of ``key`` / ``not_key`` (IAM: a statement has one or the other)."""
    has_key, has_not = key in raw, not_key in raw
    if has_key and has_not:
        raise AuthorizerResponseError(f"{where}: has both {key} and {not_key}; use one")
    if not has_key and not has_not:
        raise AuthorizerResponseError(f"{where}.{key}: missing{_case_hint(raw, key)}")
    chosen = key if has_key else not_key
    return _string_list(raw[chosen], f"{where}.{chosen}"), has_not


_RawStatement = tuple[Effect, tuple[str, ...], bool, tuple[str, ...], bool]


def _parse_statement(raw: object, where: str) -> _RawStatement:
    if not isinstance(raw, Mapping):
        raise AuthorizerResponseError(f"{where}: must be an object, not {_type_name(raw)}")
    for key in raw:
        if key not in _STATEMENT_KEYS:
            if key == "Condition":
                raise AuthorizerResponseError(f"{where}.Condition: conditions are not supported by wsgw")
            hint = next((f' (keys are case-sensitive: use "{k}")' for k in _STATEMENT_KEYS
                         if isinstance(key, str) and k.lower() == key.lower()), "")
            raise AuthorizerResponseError(f"{where}: unknown key {key!r}{hint}")
    if "Effect" not in raw:
        raise AuthorizerResponseError(f"{where}.Effect: missing")
    effect = raw["Effect"]
    if effect not in ("Allow", "Deny"):
        raise AuthorizerResponseError(
            f"{where}.Effect: must be \"Allow\" or \"Deny\" (case-sensitive), not {effect!r}"
        )
    actions, not_action = _either(raw, "Action", "NotAction", where)
    resources, not_resource = _either(raw, "Resource", "NotResource", where)
    return effect, actions, not_action, resources, not_resource


def _parse_policy_document(result: Mapping[str, object]) -> list[_RawStatement]:
    if "policyDocument" not in result:
        raise AuthorizerResponseError(f"policyDocument: missing{_case_hint(result, 'policyDocument')}")
    document = result["policyDocument"]
    if not isinstance(document, Mapping):
        raise AuthorizerResponseError(f"policyDocument: must be an object, not {_type_name(document)}")
    version = document.get("Version")
    if version is not None and not isinstance(version, str):
        raise AuthorizerResponseError(f"policyDocument.Version: must be a string, not {_type_name(version)}")
    if "Statement" not in document:
        raise AuthorizerResponseError(f"policyDocument.Statement: missing{_case_hint(document, 'Statement')}")
    raw_statements = document["Statement"]
    if isinstance(raw_statements, Mapping):  # IAM grammar allows a single statement object
        return [_parse_statement(raw_statements, "policyDocument.Statement")]
    if not isinstance(raw_statements, list | tuple):
        raise AuthorizerResponseError(
            f"policyDocument.Statement: must be a list of statements or one statement object, "
            f"not {_type_name(raw_statements)}"
        )
    return [_parse_statement(raw, f"policyDocument.Statement[{i}]") for i, raw in enumerate(raw_statements)]


def _json_value(value: object, where: str) -> JsonValue:
    """Copy a JSON value (HTTP API context), refusing what JSON cannot carry."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise AuthorizerResponseError(f"{where}: {value!r} is not a JSON number")
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        return {_context_key(k, where): _json_value(v, f"{where}.{k}") for k, v in value.items()}
    raise AuthorizerResponseError(f"{where}: {_type_name(value)} is not a JSON value")


def _context_key(key: object, where: str) -> str:
    if not isinstance(key, str):
        raise AuthorizerResponseError(f"{where}: keys must be strings, not {_type_name(key)}")
    return key


def _parse_context(raw: object, *, flat: bool) -> dict[str, JsonValue]:
    """Validate ``context``: flat string/number/boolean values (REST, WebSocket) or any JSON (HTTP API)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise AuthorizerResponseError(f"context: must be an object, not {_type_name(raw)}")
    out: dict[str, JsonValue] = {}
    for key, value in raw.items():
        name = _context_key(key, "context")
        where = f"context.{name}"
        if not flat:
            out[name] = _json_value(value, where)
            continue
        if isinstance(value, Mapping):
            raise AuthorizerResponseError(f"{where}: nested objects are not allowed ({_FLAT_RULE})")
        if isinstance(value, list | tuple):
            raise AuthorizerResponseError(f"{where}: arrays are not allowed ({_FLAT_RULE})")
        if value is None:
            raise AuthorizerResponseError(f"{where}: null is not allowed ({_FLAT_RULE})")
        if not isinstance(value, str | int | float):  # bool is an int
            raise AuthorizerResponseError(f"{where}: {_type_name(value)} is not allowed ({_FLAT_RULE})")
        if isinstance(value, float) and not math.isfinite(value):
            raise AuthorizerResponseError(f"{where}: {value!r} is not a JSON number ({_FLAT_RULE})")
        out[name] = value
    return out


def _check_size(result: Mapping[str, object], max_bytes: int | None) -> int:
    """Enforce the authorizer result quota on the compact UTF-8 JSON form of the whole response; its size."""
    try:
        encoded = json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise AuthorizerResponseError(f"authorizer response is not JSON-serialisable: {exc}") from None
    if max_bytes is not None and len(encoded) > max_bytes:
        raise AuthorizerResponseError(
            f"authorizer response is {len(encoded)} bytes of JSON; the limit is {max_bytes} bytes "
            f"(AWS's 8 KB Lambda authorizer result quota for WebSocket APIs)"
        )
    return len(encoded)


def parse_authorizer_response(
    result: object,
    *,
    max_bytes: int | None = AUTHORIZER_RESULT_MAX_BYTES,
    flat_context: bool = True,
) -> AuthorizerDecision:
    """Validate a REQUEST authorizer's IAM-policy output and compile it into a decision.

    Raises :class:`AuthorizerResponseError` (the caller answers 500, as AWS does) for a non-object
    response, a missing or malformed ``policyDocument``, an ``Effect`` other than ``Allow``/``Deny``,
    non-flat ``context`` values (unless ``flat_context=False``, as HTTP APIs allow), or a response whose
    JSON is over ``max_bytes`` (``None`` turns the size check off).
    """
    if not isinstance(result, Mapping):
        raise AuthorizerResponseError(
            f"authorizer response must be an object with principalId and policyDocument, "
            f"not {_type_name(result)}"
        )
    principal_id = _optional_string(result, "principalId")
    usage_identifier_key = _optional_string(result, "usageIdentifierKey")
    raw_statements = _parse_policy_document(result)
    context = _parse_context(result.get("context"), flat=flat_context)
    size = _check_size(result, max_bytes)
    statements = tuple(
        Statement(effect, actions, resources, not_action=not_action, not_resource=not_resource)
        for effect, actions, not_action, resources, not_resource in raw_statements
    )
    return AuthorizerDecision(principal_id, statements, context, usage_identifier_key, size_bytes=size)


_ALLOW_EVERYTHING = ("*",)


def parse_simple_response(
    result: object, *, max_bytes: int | None = None
) -> AuthorizerDecision | None:
    """Parse an HTTP API "simple response" ``{"isAuthorized": bool, "context": {...}}``.

    Returns ``None`` when ``result`` is an object without ``isAuthorized`` (so the caller can fall back
    to :func:`parse_authorizer_response`; HTTP API format 2.0 accepts either). The decision's
    :meth:`~AuthorizerDecision.evaluate` answers ``isAuthorized`` for every ARN and action. Context
    values may be any JSON, as HTTP APIs allow arrays and objects there.
    """
    if not isinstance(result, Mapping):
        raise AuthorizerResponseError(
            f"authorizer response must be an object with isAuthorized, not {_type_name(result)}"
        )
    if "isAuthorized" not in result:
        return None
    authorized = result["isAuthorized"]
    if not isinstance(authorized, bool):
        raise AuthorizerResponseError(f"isAuthorized: must be a boolean, not {_type_name(authorized)}")
    context = _parse_context(result.get("context"), flat=False)
    size = _check_size(result, max_bytes)
    statements = (Statement("Allow", _ALLOW_EVERYTHING, _ALLOW_EVERYTHING),) if authorized else ()
    return AuthorizerDecision(None, statements, context, None, simple=True, size_bytes=size)


# --------------------------------------------------------------------------- cache


DECISION_CACHE_MAX_BYTES = 16 * 1024 * 1024
_ENTRY_OVERHEAD = 256      # the tuple, the OrderedDict node and the decision object, roughly


class DecisionCache:
    """Authorizer results cached by identity-source values for resultTtlInSeconds.

    Bounded by entries and by bytes (least recently used goes first), so neither a flood of distinct tokens
    nor a flood of large ones (a 7 KB identity is a valid header) can grow memory past ``max_bytes``. Only
    decisions are stored: AWS caches the whole policy (a Deny too) and re-evaluates it for each method
    ARN, which the caller does with :meth:`AuthorizerDecision.evaluate`; a 401 is never cached. Not
    thread-safe: use it from the event loop's thread.
    """

    __slots__ = ("_clock", "_entries", "bytes", "max_bytes", "max_entries", "ttl_seconds")

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = DECISION_CACHE_MAX_BYTES,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError(f"ttl_seconds must be >= 0, not {ttl_seconds}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, not {max_entries}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, not {max_bytes}")
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0             # what the held entries cost, by entry_cost()
        self._clock = clock
        self._entries: OrderedDict[tuple[str, ...], tuple[float, AuthorizerDecision, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, ...]) -> AuthorizerDecision | None:
        """The cached decision for these identity values, or None if absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, decision, _ = entry
        if self._clock() >= expires_at:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return decision

    def put(self, key: tuple[str, ...], decision: AuthorizerDecision) -> None:
        """Remember a decision for ttl_seconds (a TTL of 0 disables caching: nothing is stored)."""
        if self.ttl_seconds <= 0:
            return
        cost = entry_cost(key, decision)
        if cost > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + self.ttl_seconds, decision, cost)
        self.bytes += cost
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped

    def _drop(self, key: tuple[str, ...]) -> None:
        self.bytes -= self._entries.pop(key)[2]

    def clear(self) -> None:
        """Forget every cached decision."""
        self._entries.clear()
        self.bytes = 0


def entry_cost(key: tuple[str, ...], decision: AuthorizerDecision) -> int:
    """What one cached decision holds: its identity values, its response's size and a fixed overhead."""
    return sum(len(part) for part in key) + decision.size_bytes + _ENTRY_OVERHEAD
