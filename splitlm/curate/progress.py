"""Progress reporting: library code calls `progress.stage(name, total)`; the CLI shows rich bars."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


class Progress:
    """Silent default. `stage` yields an `advance(n)` callable; `note` records a one-line message."""

    def __init__(self):
        self.notes: list[str] = []

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        yield lambda n: None

    def note(self, message: str) -> None:
        self.notes.append(message)


class RichProgress(Progress):
    """One bar per stage on stderr; stages that were up to date say so."""

    def __init__(self):
        super().__init__()
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

        columns = [TextColumn(f"{name:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Bar(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(name, total=total)
            yield lambda n: bar.advance(task, n)
            bar.update(task, total=bar.tasks[0].completed)

    def note(self, message: str) -> None:
        super().note(message)
        self.console.print(message)
