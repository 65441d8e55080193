"""Closing summary tables printed by the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def print_windows_summary(summary: dict[str, Any], run: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"curate windows -> {run}", show_header=True)
    table.add_column("documents / tokens")
    table.add_column("count", justify="right")
    quarantined = summary["documents_quarantined"]
    rows = [
        ("documents in", summary["documents_in"]),
        *[(f"  quarantined: {reason}", n) for reason, n in quarantined.items()],
        ("  duplicates removed", summary["documents_duplicate"]),
        (f"  dropped ({summary['policy']} policy)", summary["documents_dropped"]),
        ("  windowed", summary["documents_windowed"]),
        (f"windows of {summary['seq_len'] + 1} tokens", summary["windows"]),
        ("  held out for validation", summary["windows_val"]),
        ("tokens in windows", summary["tokens"]),
        ("tokens dropped", summary["tokens_dropped"]),
    ]
    for name, value in rows:
        table.add_row(name, f"{value:,}")
    Console().print(table)
