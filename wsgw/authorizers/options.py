"""Reading an authorizer's type-specific options: every problem collected, each naming its key."""

from __future__ import annotations

import difflib
from typing import Any

from wsgw.config import AuthorizerSpec
from wsgw.errors import ConfigError, ConfigProblem


class OptionReader:
    """Typed access to ``AuthorizerSpec.options``; :meth:`finish` raises one ConfigError listing all problems."""

    def __init__(self, spec: AuthorizerSpec) -> None:
        self.spec = spec
        self.problems: list[ConfigProblem] = []
        self.read: set[str] = set()

    def key(self, name: str) -> str:
        return f"authorizers.{self.spec.name}.{name}"

    def problem(self, name: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.key(name), message))

    def raw(self, name: str) -> Any:
        self.read.add(name)
        return self.spec.options.get(name)

    def string(self, name: str, *, required: bool = False, example: str = "") -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.problem(name, f"missing: give a string{f' such as {example}' if example else ''}")
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(name, "must be a non-empty string")
            return None
        return value.strip()

    def string_list(self, name: str, *, required: bool = False, example: str = "") -> tuple[str, ...] | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.problem(name, f"missing: give a list of strings{f' such as {example}' if example else ''}")
            return None
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
            self.problem(name, f"must be a non-empty list of strings{f' such as {example}' if example else ''}")
            return None
        return tuple(items)

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not minimum <= value <= maximum:
            self.problem(name, f"must be a number from {minimum:g} to {maximum:g}")
            return default
        return float(value)

    def finish(self, ignored: frozenset[str] = frozenset()) -> None:
        """Report unknown keys too, then raise if anything was wrong."""
        known = self.read | ignored
        for name in self.spec.options:
            if name not in known:
                close = difflib.get_close_matches(str(name), sorted(self.read), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.problem(str(name), f"unknown key for a '{self.spec.type}' authorizer{hint}")
        if self.problems:
            raise ConfigError(self.problems)
