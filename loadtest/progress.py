"""A progress bar per measurement (rich when installed and on a terminal; one plain line otherwise)."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """start() → update() … → finish(); `quiet` prints nothing (tests)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.console: Any = None
        self._labels: dict[int, str] = {}
        if quiet:
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress
        except ImportError:
            return
        self.console = Console(stderr=True)
        if self.console.is_terminal:
            self.bar = RichProgress(TextColumn("{task.description:<40}"), BarColumn(), TimeElapsedColumn(),
                                    TextColumn("{task.fields[rate]}"), console=self.console, auto_refresh=False,
                                    transient=False)
            self.bar.start()

    def start(self, label: str, seconds: float) -> int:
        if self.bar is not None:
            task = int(self.bar.add_task(label, total=max(seconds, 0.1), rate=""))
            self.bar.refresh()
        else:
            task = len(self._labels)
            if not self.quiet:
                print(f"… {label} ({seconds:g}s)", file=sys.stderr, flush=True)
        self._labels[task] = label
        return task

    def update(self, task: int, elapsed: float, rate: float, unit: str) -> None:
        if self.bar is not None:
            self.bar.update(task, completed=elapsed, rate=f"{rate:,.0f} {unit}")
            self.bar.refresh()

    def finish(self, task: int) -> None:
        if self.bar is not None:
            total = self.bar.tasks[[t.id for t in self.bar.tasks].index(task)].total
            self.bar.update(task, completed=total)
            self.bar.refresh()

    def note(self, text: str) -> None:
        """A line under the bars: a not-available variant, a saturated generator, a loss."""
        if self.quiet:
            return
        if self.console is not None:
            self.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
