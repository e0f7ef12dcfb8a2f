"""Serverless Framework variables: `${self:a.b}`, `${opt:stage}`, `${env:NAME}`, `${sls:stage}`, `${param:x}`,
`${aws:region}`, with fallbacks `${opt:stage, self:provider.stage, 'dev'}` and nesting (`${self:custom.${opt:stage}}`).

A string that is exactly one variable takes the referenced value as is (a mapping, a number); inside a longer
string the value is written as text. Sources that need AWS or files (`ssm:`, `cf:`, `s3:`, `file(...)`) are
not resolvable locally: their fallback is used when there is one, else it is a problem naming the key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

_INNERMOST = re.compile(r"\$\{([^${}]*)\}")
_WHOLE = re.compile(r"^\$\{([^${}]*)\}$")
_MISSING = object()


class VariableResolver:
    def __init__(self, doc: dict[str, Any], options: dict[str, str], params: dict[str, Any],
                 problem: Callable[[str, str], None]) -> None:
        self.doc = doc
        self.options = options
        self.params = params
        self.problem = problem
        self._active: set[str] = set()

    def resolve(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            return self._string(value, key)
        return value

    def _string(self, text: str, key: str) -> Any:
        for _ in range(50):                           # nesting depth guard
            whole = _WHOLE.match(text)
            if whole:
                return self._expression(whole.group(1), key)
            match = _INNERMOST.search(text)
            if match is None:
                return text
            value = self._expression(match.group(1), key)
            text = text[:match.start()] + ("" if value is None else str(value)) + text[match.end():]
        self.problem(key, "variables nest too deeply")
        return text

    def _expression(self, expression: str, key: str) -> Any:
        reasons = []
        for source in _split_sources(expression):
            value, reason = self._source(source.strip(), key)
            if value is not _MISSING and value is not None:
                return value
            if reason:
                reasons.append(reason)
        self.problem(key, f"${{{expression}}} cannot be resolved locally"
                     + (f": {'; '.join(reasons)}" if reasons else "") + "; add a fallback, e.g. ${opt:stage, 'dev'}")
        return None

    def _source(self, source: str, key: str) -> tuple[Any, str]:
        if len(source) >= 2 and source[0] == source[-1] and source[0] in "'\"":
            return source[1:-1], ""
        if re.fullmatch(r"-?\d+(\.\d+)?", source):
            return (float(source) if "." in source else int(source)), ""
        kind, _, rest = source.partition(":")
        if kind == "opt":
            return self.options.get(rest, _MISSING), f"no --{rest} given"
        if kind == "env":
            return os.environ.get(rest, _MISSING), f"${rest} is not set"
        if kind == "sls" and rest == "stage":
            return self.options.get("stage") or self._present("provider.stage", key) or "dev", ""
        if kind == "aws" and rest == "region":
            return self.options.get("region") or self._present("provider.region", key) or "us-east-1", ""
        if kind == "aws" and rest == "accountId":
            return "000000000000", ""
        if kind == "param":
            return self.params.get(rest, _MISSING), f"no param '{rest}' for this stage"
        if kind == "self":
            return self._self(rest, key), f"self:{rest} does not exist"
        if kind in ("ssm", "cf", "s3", "sls", "aws") or source.startswith(("file(", "strToBool(")):
            return _MISSING, f"'{source}' needs AWS or other files"
        return _MISSING, f"unknown variable source '{source}'"

    def _present(self, path: str, key: str) -> Any:
        value = self._self(path, key)
        return None if value is _MISSING else value

    def _self(self, path: str, key: str) -> Any:
        if path in self._active:
            self.problem(key, f"self:{path} refers to itself")
            return None
        node: Any = self.doc
        for part in [p for p in path.split(".") if p]:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return _MISSING
        self._active.add(path)
        try:
            return self.resolve(node, key)
        finally:
            self._active.discard(path)


def _split_sources(expression: str) -> list[str]:
    """Split `a, 'b, c', d` on commas outside quotes."""
    parts, current, quote = [], "", ""
    for char in expression:
        if quote:
            current += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current += char
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in (p.strip() for p in parts) if p]
