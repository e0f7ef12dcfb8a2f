"""Typed errors a user can cause, each carrying the key it is about and the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in an API definition: the dotted key it is about and what to do."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(Exception):
    """The API definition cannot be served; `problems` lists every reason, one per key."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @classmethod
    def single(cls, key: str, message: str) -> ConfigError:
        return cls([ConfigProblem(key, message)])
