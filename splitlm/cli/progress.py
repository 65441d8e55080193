"""Rich progress bars for the library's `Progress` protocol: one bar per stage, on stderr."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

from splitlm.core.progress import Progress


class RichProgress(Progress):
    """One bar per stage; stages that were up to date say so."""

    def __init__(self):
        super().__init__()
        self.console = Console(stderr=True)

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        columns = [TextColumn(escape(f"{name:<10}")), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Bar(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(name, total=total)
            yield lambda n: bar.advance(task, n)
            bar.update(task, total=bar.tasks[0].completed)

    def note(self, message: str) -> None:
        super().note(message)
        self.console.print(escape(message))
