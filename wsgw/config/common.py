"""What every part of the config layer shares: collecting problems, did-you-mean hints, string maps."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from wsgw.errors import ConfigProblem


class Collector:
    """Gathers problems so that all of them are reported together."""

    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(key, message))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def string_map(raw: Any, key: str, problems: Collector) -> dict[str, str]:
    """A mapping of names to strings (numbers and booleans written as text, as YAML users expect)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(key, "must be a mapping of names to string values")
        return {}
    out = {}
    for k, v in raw.items():
        if isinstance(v, (dict, list)) or v is None:
            problems.add(f"{key}.{k}", "must be a string (or a number, written as text)")
            continue
        out[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
    return out
