"""Rich progress bars for the library's `Progress` protocol: one bar per stage, on stderr.

When stderr is not a terminal (a log file, a pipe, CI), bars would only leave frozen snapshots,
so each finished stage prints one plain line on stdout instead, and stderr keeps only errors.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

from splitlm.core.progress import Progress


class RichProgress(Progress):
    """One bar per stage on a terminal, one line per finished stage otherwise; up-to-date stages say so."""

    def __init__(self):
        super().__init__()
        self.console = Console(stderr=True)
        self.live = self.console.is_terminal
        self.log = self.console if self.live else Console()

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        if not self.live:
            done, start = [0], time.perf_counter()
            yield lambda n: done.__setitem__(0, done[0] + n)
            self.log.print(escape(f"{name}: {done[0]:,} done in {time.perf_counter() - start:.1f}s"))
            return
        columns = [TextColumn(escape(f"{name:<10}")), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Bar(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(name, total=total)
            yield lambda n: bar.advance(task, n)
            bar.update(task, total=bar.tasks[0].completed)

    def note(self, message: str) -> None:
        super().note(message)
        self.log.print(escape(message))
