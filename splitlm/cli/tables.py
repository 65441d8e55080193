"""Closing summary tables printed by the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from splitlm.curate.inspect.report import domains_from, routing_from, similarity_from
from splitlm.schemas.card import Card
from splitlm.schemas.layout import RunLayout, cluster_number
from splitlm.schemas.run import RunSummary


def console() -> Console:
    """A console at least 120 columns wide, so tables stay readable when output is piped or logged."""
    out = Console()
    return out if out.is_terminal and out.width >= 120 else Console(width=max(out.width, 120))


def print_windows_summary(summary: RunSummary, run: Path) -> None:
    table = Table(title=escape(f"curate windows -> {run}"), show_header=True)
    table.add_column("documents / tokens")
    table.add_column("count", justify="right")
    rows = [
        ("documents in", summary.documents_in),
        *[(f"  quarantined: {reason}", n) for reason, n in summary.documents_quarantined.items()],
        ("  duplicates removed", summary.documents_duplicate),
        (f"  dropped ({summary.policy} policy)", summary.documents_dropped),
        ("  windowed", summary.documents_windowed),
        (f"windows of {summary.seq_len + 1} tokens", summary.windows),
        ("  held out for validation", summary.windows_val),
        ("tokens in windows", summary.tokens),
        ("tokens dropped", summary.tokens_dropped),
        *[(f"files skipped: {reason}", n) for reason, n in (summary.files_skipped or {}).items()],
    ]
    for name, value in rows:
        table.add_row(escape(name), f"{value:,}")
    console().print(table)


def print_cluster_summary(summary: RunSummary, run: Path) -> None:
    print_windows_summary(summary, run)
    k = summary.k
    table = Table(title=escape(f"curate cluster -> {run} (K={k}, embed {summary.embed_mode})"))
    cards = [Card.model_validate_json(RunLayout(run).card(c, k).read_text()) for c in range(k)]
    prefix = cards[0].routing_prefix_tokens if cards else 32
    for name, justify in (("cluster", "left"), ("windows", "right"), ("tokens", "right"), ("top domains", "left"),
                          (f"routing@{prefix}", "right"), ("top terms", "left")):
        table.add_column(name, justify=justify)
    for card in cards:
        dom = ", ".join(f"{d} {n / card.windows:.0%}" for d, n in list(card.domains.items())[:2]) or "-"
        acc = "-" if card.routing_accuracy is None else f"{card.routing_accuracy:.0%}"
        table.add_row(card.name, f"{card.windows:,}", f"{card.tokens:,}", escape(dom), acc,
                      escape(", ".join(card.top_terms[:5])))
    out = console()
    out.print(table)
    cl = summary.clusters
    out.print(f"balance: max/min {cl['max_min']:.3f} over all windows | objective {cl['objective']:.4f}")
    plain = cl.get("plain_faiss")
    if plain and "ours_max_min" in plain:  # run on the fit sample (older manifests compared all windows)
        out.print(f"on the fit sample of {plain['rows']:,} windows: max/min {plain['ours_max_min']:.3f} against "
                  f"{plain['max_min']:.2f} for plain faiss k-means | objective {plain['ours_objective']:.4f} against "
                  f"{plain['objective']:.4f} | fit {plain['time_ratio']:.2f}x plain's time on that sample")
    out.print(escape(f"cards: {run / 'cards' / 'index.md'}  shards: {run / 'shards'}  router: {run / 'clusters'}"))


def print_inspect_summary(summary: dict[str, Any], out: Path) -> None:
    console = Console()
    dom = domains_from(summary)
    if dom.labelled:
        table = Table(title=f"{escape(dom.field)} x cluster (share of each label's windows)")
        for name in ("label", "windows", "top cluster", "top share", "eff. clusters"):
            table.add_column(name, justify="left" if name == "label" else "right")
        for lab, n, tc, ts, h in zip(dom.labels, dom.counts_LK.sum(1), dom.top_cluster_L, dom.top_share_L,
                                     dom.entropy_bits_L):
            table.add_row(escape(lab), f"{n:,}", cluster_number(tc, summary["k"]), f"{ts:.0%}", f"{2.0 ** h:.1f}")
        console.print(table)
    table = Table(title=f"prefix routing ({summary['sample']['windows']:,} {summary['sample']['split']} windows, "
                        f"K={summary['k']})")
    for name in ("P tokens", "R@1", "R@5", "route top-1", "route top-3"):
        table.add_column(name, justify="right")
    for r in routing_from(summary):
        table.add_row(str(r.prefix_tokens), f"{r.r_at_1:.3f}", f"{r.r_at_5:.3f}", f"{r.route_top1:.3f}",
                      f"{r.route_top3:.3f}")
    console.print(table)
    k = summary["k"]
    pairs = ", ".join(f"{p.similarity}: {cluster_number(p.reference, k)}+{cluster_number(p.partner, k)}"
                      for p in similarity_from(summary).pairs)
    console.print(f"App. F pairs: {pairs or 'n/a (K = 1)'}")
    console.print(escape(f"inspect took {summary.get('wall_seconds', 0):.1f}s; report: {out / 'report.md'}"))


def print_verified(run: Path) -> None:
    """`curate verify`: one line when every file matches; otherwise a SchemaError naming the files."""
    from splitlm.core.errors import SchemaError
    from splitlm.curate.verify import verify_run

    result = verify_run(run)
    if result.problems:
        shown = "; ".join(result.problems[:3])
        more = f"; and {len(result.problems) - 3} more" if len(result.problems) > 3 else ""
        raise SchemaError(f"{run}: {len(result.problems)} problem(s): {shown}{more}")
    console().print(escape(f"verified {result.files:,} files ({result.bytes / 1e6:,.1f} MB) in "
                           f"{len(result.stages)} stages of {run}: {', '.join(result.stages)}"))
