"""Closing summary tables printed by the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def console():
    """A console at least 120 columns wide, so tables stay readable when output is piped or logged."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal and out.width >= 120 else Console(width=max(out.width, 120))


def print_windows_summary(summary: dict[str, Any], run: Path) -> None:
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
    console().print(table)


def print_cluster_summary(summary: dict[str, Any], run: Path) -> None:
    import json

    from rich.table import Table

    print_windows_summary(summary, run)
    k = summary["k"]
    table = Table(title=f"curate cluster -> {run} (K={k}, embed {summary['embed_mode']})")
    for name, justify in (("cluster", "left"), ("windows", "right"), ("tokens", "right"), ("top domains", "left"),
                          ("routing@32", "right"), ("top terms", "left")):
        table.add_column(name, justify=justify)
    from splitlm.curate.shards import cluster_name

    for c in range(k):
        card = json.loads((run / "cards" / f"{cluster_name(c, k)}.json").read_text())
        dom = ", ".join(f"{d} {n / card['windows']:.0%}" for d, n in list(card["domains"].items())[:2]) or "-"
        acc = "-" if card["routing_accuracy_32"] is None else f"{card['routing_accuracy_32']:.0%}"
        table.add_row(card["name"], f"{card['windows']:,}", f"{card['tokens']:,}", dom, acc,
                      ", ".join(card["top_terms"][:5]))
    out = console()
    out.print(table)
    cl = summary["clusters"]
    plain = cl["plain_faiss"]
    out.print(f"balance: max/min {cl['max_min']:.3f} (bar <= 1.10; plain faiss k-means {plain['max_min']:.2f}) | "
                  f"objective {cl['objective']:.4f} (plain {plain['objective']:.4f}) | "
                  f"time {cl['seconds']:.2f}s = {cl['time_ratio_vs_plain']:.2f}x plain (bar <= 1.5)")
    out.print(f"cards: {run / 'cards' / 'index.md'}  shards: {run / 'shards'}  router: {run / 'clusters'}")
