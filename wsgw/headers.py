"""Request header lines, looked up by case-insensitive name: the one header type of both fronts. Pure.

HTTP header names are case-insensitive (RFC 9110, section 5.1), yet AWS events show each name as the
client spelled it and keep repeats, so the lines are kept as they arrived and only the lookups fold case.
"""

from __future__ import annotations

from collections.abc import Iterable


class Headers(tuple[tuple[str, str], ...]):
    """Immutable (name, value) lines in arrival order; iterating yields the lines as sent."""

    __slots__ = ()

    def __new__(cls, lines: Iterable[tuple[str, str]] = ()) -> Headers:
        return super().__new__(cls, lines)

    def get(self, name: str) -> str | None:
        """The first value given for `name`, or None."""
        wanted = name.lower()
        for key, value in self:
            if key.lower() == wanted:
                return value
        return None

    def last(self, name: str) -> str | None:
        """The last value given for `name` (what the single-value maps of AWS events keep), or None."""
        found: str | None = None
        wanted = name.lower()
        for key, value in self:
            if key.lower() == wanted:
                found = value
        return found

    def get_all(self, name: str) -> list[str]:
        """Every value given for `name`, one per line, in order."""
        wanted = name.lower()
        return [value for key, value in self if key.lower() == wanted]

    def tokens(self, name: str) -> list[str]:
        """The comma-separated items of every `name` line, stripped, empties dropped (e.g. subprotocols)."""
        return [item.strip() for value in self.get_all(name) for item in value.split(",") if item.strip()]
