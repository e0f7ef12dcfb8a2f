"""The process's file-descriptor limit: every socket is one descriptor, so a node sized for N connections needs
N plus some for its listening sockets, Redis, handler threads and files.

At start the node raises its soft RLIMIT_NOFILE to the hard limit — and both to what it wants where the hard limit
is lower and the process may (CAP_SYS_RESOURCE) — and, when that is still short, says so once in the log and on
/health (`fileDescriptors`). Nothing else reads or changes the limit.
"""

from __future__ import annotations

import contextlib
import logging
import resource
from dataclasses import dataclass

log = logging.getLogger("wsgw.server")

HEADROOM = 1_024               # descriptors beyond the connections: listeners, Redis, threads' files, logs


@dataclass(frozen=True, slots=True)
class FdLimit:
    soft: int
    hard: int
    wanted: int

    @property
    def enough(self) -> bool:
        return self.soft >= self.wanted

    def as_json(self) -> dict[str, object]:
        return {"limit": self.soft, "hard": self.hard, "wanted": self.wanted, "enough": self.enough}


def _nr_open() -> int:
    """The kernel's ceiling on a process's descriptors (Linux); a large number elsewhere."""
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1 << 20


def _finite(value: int) -> int:
    return _nr_open() if value == resource.RLIM_INFINITY else value


def raise_fd_limit(connections: int) -> FdLimit:
    """Raise the soft limit to the hard limit, and both to `connections` + HEADROOM where the hard limit is lower
    and the process may raise it; the limit it ends at, and what was wanted."""
    wanted = connections + HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(_finite(hard), min(wanted, _nr_open()))
    if _finite(soft) < target:
        try:                                  # above the hard limit: only a privileged process may
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
        except (ValueError, OSError):
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FdLimit(_finite(soft), _finite(hard), wanted)


def report(limit: FdLimit, planned: int) -> None:
    if not limit.enough:
        log.warning("file descriptors: the limit is %d, %d wanted for %d planned connections "
                    "(--planned-connections); connections beyond about %d will be refused by the OS. "
                    "Raise the hard limit: `ulimit -Hn`, LimitNOFILE= (systemd), --ulimit nofile= (docker)",
                    limit.soft, limit.wanted, planned, max(0, limit.soft - HEADROOM))


# What this process ended at (set by the node's start); /health shows it.
CURRENT: list[FdLimit] = []


def health_fields() -> dict[str, object]:
    """/health's `fileDescriptors`: the limit this process ended at against what it wanted (once started)."""
    return {"fileDescriptors": CURRENT[-1].as_json()} if CURRENT else {}
