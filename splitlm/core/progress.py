"""Progress reporting: library code calls `progress.stage(name, total)`; the CLI supplies a display.

The default is silent, so library calls and tests print nothing; `splitlm.cli.progress` draws
rich bars on stderr.
"""

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
