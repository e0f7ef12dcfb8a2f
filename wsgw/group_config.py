"""Groups as the API declares them: what a group name may be, and the options a name pattern opts into
(`groups: {"room:*": {history: {size: 100, ttlSeconds: 600}, envelope: true, presence: true, joinRoutes: true}}`).

Pure values, no I/O; `parse_groups` reports problems through the callback config.parse_api passes in.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

# A group name: 1-128 of letters, digits and `_ . : @ -`. No `{`/`}` (Redis hash tags), no `/` or `%` (it is a
# path segment), no `*`/`?`/`[` (patterns in `groups:`), no whitespace or control characters.
GROUP_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
GROUP_NAME_RULE = "1-128 letters, digits, '_', '.', ':', '@' or '-'"
GROUP_KEYS = {"history", "envelope", "presence", "joinRoutes"}
JOIN_ROUTES = ("$join", "$leave")      # the routes `joinRoutes: true` calls (docs/groups.md)
HISTORY_KEYS = {"size", "ttlSeconds"}
MAX_HISTORY_SIZE = 10_000
MAX_HISTORY_TTL = 7 * 24 * 3600


def valid_group(name: str) -> bool:
    return bool(GROUP_NAME.match(name))


@dataclass(frozen=True, slots=True)
class History:
    """Bounded history: at most `size` messages, none older than `ttl_seconds`."""

    size: int
    ttl_seconds: int


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    """What one pattern opts into; a group matching no pattern gets the default (plain fan-out)."""

    pattern: str = "*"
    history: History | None = None
    envelope: bool = False       # members receive {"group", "seq", "data"} instead of the bare frame
    presence: bool = False       # join/leave notices published into the group
    join_routes: bool = False    # joins and leaves call the $join / $leave routes (when defined)


DEFAULT_POLICY = GroupPolicy()


@dataclass(frozen=True, slots=True)
class GroupsConfig:
    """Patterns in the order written; the first that matches a group name decides its policy."""

    policies: tuple[GroupPolicy, ...] = field(default_factory=tuple)

    def policy_for(self, group: str) -> GroupPolicy:
        for policy in self.policies:
            if fnmatch.fnmatchcase(group, policy.pattern):
                return policy
        return DEFAULT_POLICY


def parse_groups(raw: Any, problem: Callable[[str, str], None],
                 route_keys: Collection[str] | None = None) -> GroupsConfig:
    """Validate `groups:`; every problem goes to `problem(key, message)`. `route_keys` (the WebSocket routes)
    lets `joinRoutes: true` be refused when neither $join nor $leave exists."""
    if raw is None:
        return GroupsConfig()
    if not isinstance(raw, dict):
        problem("groups", 'must map a group pattern to options, e.g. {"room:*": {history: {size: 100}}}')
        return GroupsConfig()
    policies: list[GroupPolicy] = []
    for pattern, options in raw.items():
        key = f"groups.{pattern}"
        if not isinstance(pattern, str) or not re.match(r"^[A-Za-z0-9_.:@*?-]{1,128}$", pattern):
            problem(key, f"a pattern is {GROUP_NAME_RULE}, with '*' and '?' as wildcards")
            continue
        if options is None:
            options = {}
        if not isinstance(options, dict):
            problem(key, "must be a mapping of history, envelope, presence, joinRoutes")
            continue
        for unknown in set(options) - GROUP_KEYS:
            problem(f"{key}.{unknown}", "unknown key (history, envelope, presence, joinRoutes)")
        history = _parse_history(options.get("history"), f"{key}.history", problem)
        flags = {}
        for name in ("envelope", "presence", "joinRoutes"):
            value = options.get(name, False)
            if not isinstance(value, bool):
                problem(f"{key}.{name}", "must be true or false")
                value = False
            flags[name] = value
        if flags["joinRoutes"] and route_keys is not None and not any(r in route_keys for r in JOIN_ROUTES):
            problem(f"{key}.joinRoutes", "no $join or $leave route is defined under routes: add one, or drop this")
        policies.append(GroupPolicy(pattern, history, flags["envelope"], flags["presence"], flags["joinRoutes"]))
    return GroupsConfig(tuple(policies))


def _parse_history(raw: Any, key: str, problem: Callable[[str, str], None]) -> History | None:
    if raw is None or raw is False:
        return None
    if not isinstance(raw, dict):
        problem(key, "must be a mapping such as {size: 100, ttlSeconds: 600}")
        return None
    for unknown in set(raw) - HISTORY_KEYS:
        problem(f"{key}.{unknown}", "unknown key (size, ttlSeconds)")
    size, ttl = raw.get("size", 100), raw.get("ttlSeconds", 600)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_HISTORY_SIZE:
        problem(f"{key}.size", f"must be a whole number from 1 to {MAX_HISTORY_SIZE}")
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_HISTORY_TTL:
        problem(f"{key}.ttlSeconds", f"must be a whole number of seconds from 1 to {MAX_HISTORY_TTL}")
        return None
    return History(size, ttl)
