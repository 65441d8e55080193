"""The three inspect figures, drawn with matplotlib's Agg backend into byte-stable PNGs.

PNGs carry no `Software` text chunk and are written at a fixed DPI, so the same numbers give the
same bytes (the data-card test relies on it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from splitlm.curate.inspect.domains import DomainStats
from splitlm.curate.inspect.routing import PrefixRow
from splitlm.curate.inspect.routing_cv import CvRow
from splitlm.curate.inspect.similarity import SimilarityStats
from splitlm.schemas.layout import cluster_number

DPI = 110
# Paper Table 5 (N = 10,000 DCLM documents), drawn as a reference under our curves.
PAPER_TABLE5 = {1: (0.0128, 0.0362), 2: (0.0955, 0.1753), 4: (0.2664, 0.3765), 8: (0.4802, 0.5884),
                16: (0.7112, 0.8078), 32: (0.8775, 0.9330), 64: (0.9663, 0.9870), 128: (0.9972, 0.9995),
                256: (0.9998, 1.0000)}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    _pyplot().close(fig)


def _annotate(ax, values_RC: np.ndarray, fmt, dark_above: float) -> None:
    """Write each cell's value, white on dark cells; blank where fmt returns ''."""
    for (r, c), v in np.ndenumerate(values_RC):
        text = fmt(v)
        if text:
            ax.text(c, r, text, ha="center", va="center", fontsize=7.5, color="white" if v > dark_above else "black")


def plot_domains(stats: DomainStats, path: Path) -> None:
    plt = _pyplot()
    shares_LK = stats.shares_LK
    n_labels, k = shares_LK.shape
    fig, ax = plt.subplots(figsize=(max(6.0, 2.8 + 0.5 * k), max(2.6, 1.6 + 0.34 * n_labels)),
                           layout="constrained")
    im = ax.imshow(shares_LK, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    _annotate(ax, shares_LK * 100, lambda v: f"{v:.0f}" if v >= 0.5 else "", dark_above=55)
    ax.set_xticks(range(k), [cluster_number(c, k) for c in range(k)], fontsize=8)
    ticks = [f"{lab}  (n={n:,}, top {s:.0%})" for lab, n, s in
             zip(stats.labels, stats.counts_LK.sum(1), stats.top_share_L)]
    ax.set_yticks(range(n_labels), ticks, fontsize=8)
    sec = ax.secondary_xaxis("top")
    sec.set_xticks(range(k), [f"{p:.0%}" for p in stats.purity_K], fontsize=7.5)
    sec.set_xlabel("cluster purity (largest label's share of the cluster)", fontsize=8)
    ax.set_title(f"Where each {stats.field}'s windows land: % per cluster (rows sum to 100)", fontsize=10)
    ax.set_xlabel("cluster")
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the label's windows")
    _save(fig, path)


def _prefix_axes(ax, ps: list[int], k: int, router_prefix: int, chance: str, chance_line: str,
                 chance_text: str) -> None:
    """The prefix-length axes both routing plots share: log2 P, the router's prefix, and chance at 1/K."""
    ax.axvline(router_prefix, color="0.4", lw=0.8, ls="-.")
    ax.text(router_prefix * 1.04, 0.03, f"router prefix: {router_prefix} tokens", fontsize=8, color="0.3")
    ax.axhline(1 / k, color=chance_line, lw=0.8, ls=":")
    if ps:
        ax.text(ps[-1], 1 / k + 0.015, f"{chance} = {1 / k:.2f}", fontsize=8, color=chance_text, va="bottom",
                ha="right")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ps, [str(p) for p in ps])
        ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("prefix length P (tokens)")


def plot_routing(rows: list[PrefixRow], k: int, split: str, router_prefix: int, path: Path) -> None:
    plt = _pyplot()
    ps = [r.prefix_tokens for r in rows]
    fig, ax = plt.subplots(figsize=(7.2, 4.4), layout="constrained")
    paper = [p for p in ps if p in PAPER_TABLE5]
    if paper:
        ax.plot(paper, [PAPER_TABLE5[p][0] for p in paper], ":", color="0.55", lw=1.4, label="paper Table 5 R@1")
        ax.plot(paper, [PAPER_TABLE5[p][1] for p in paper], "--", color="0.75", lw=1.4, label="paper Table 5 R@5")
    curves = (("r_at_1", "R@1: full window retrieved first", "C0", "o"),
              ("r_at_5", "R@5: full window in top 5", "C0", "s"),
              ("route_top1", "centroid rule: own cluster (top-1)", "C3", "o"),
              ("route_top3", "centroid rule: own cluster in top-3", "C3", "s"))
    if rows and rows[0].learned_top1 is not None:  # the run's learned router, drawn beside the centroid rule
        curves += (("learned_top1", "learned router: own cluster (top-1)", "C2", "o"),
                   ("learned_top3", "learned router: own cluster in top-3", "C2", "s"))
    for attr, label, color, marker in curves:
        style = "-" if attr.endswith(("1", "top1")) else "--"
        ax.plot(ps, [getattr(r, attr) for r in rows], style, color=color, marker=marker, ms=4, label=label)
    _prefix_axes(ax, ps, k, router_prefix, "chance routing 1/K", "C3", "C3")
    ax.set_ylabel("share of windows")
    n = rows[0].windows if rows else 0
    which = {"val": "validation", "train": "training", "all": "sampled"}[split]
    ax.set_title(f"Prefix routing: {n:,} {which} windows, K = {k} (R@k: own window among all {n:,})", fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncol=3)
    _save(fig, path)


def plot_routing_cv(rows: list[CvRow], k: int, router_prefix: int, path: Path) -> None:
    """Each router's cross-validated top-1 against P with its 95% band, and its validation top-1 as points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4), layout="constrained")
    colors = {"centroid": "C3", "learned": "C2"}
    ps = sorted({r.prefix_tokens for r in rows})
    for name in dict.fromkeys(r.router for r in rows):
        color = colors.get(name, "C0")
        cv = sorted((r for r in rows if r.router == name and r.split == "cv" and r.n), key=lambda r: r.prefix_tokens)
        val = sorted((r for r in rows if r.router == name and r.split == "val" and r.n), key=lambda r: r.prefix_tokens)
        if cv:
            x = [r.prefix_tokens for r in cv]
            ax.fill_between(x, [r.top1_low for r in cv], [r.top1_high for r in cv], color=color, alpha=0.18, lw=0)
            ax.plot(x, [r.top1 for r in cv], "-", color=color, marker="o", ms=4,
                    label=f"{name}: 5-fold CV, training windows (n={cv[0].n:,}, 95% band)")
        if val:
            x = [r.prefix_tokens for r in val]
            ax.errorbar(x, [r.top1 for r in val], yerr=[[r.top1 - r.top1_low for r in val],
                                                      [r.top1_high - r.top1 for r in val]],
                        fmt="s", color=color, mfc="white", ms=4, capsize=2, lw=0.8, ls="none",
                        label=f"{name}: validation windows (n={val[0].n:,}, 95%)")
    _prefix_axes(ax, ps, k, router_prefix, "chance 1/K", "0.5", "0.4")
    ax.set_ylabel("share routed to the window's own cluster")
    ax.set_title(f"Routing accuracy by prefix length, K = {k}: cross-validated and held out", fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncol=2)
    _save(fig, path)


def plot_similarity(stats: SimilarityStats, path: Path) -> None:
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    cos_KK = stats.cos_KK
    k = len(cos_KK)
    off = cos_KK[~np.eye(k, dtype=bool)] if k > 1 else np.ones(1)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 0.55 * k), max(4.2, 1.6 + 0.45 * k)), layout="constrained")
    shown_KK = np.where(np.eye(k, dtype=bool), np.nan, cos_KK)  # the diagonal (1.0) would flatten the scale
    im = ax.imshow(shown_KK, cmap="viridis", vmin=float(off.min()), vmax=float(off.max()))
    level = {(p.reference, p.partner): p.similarity for p in stats.pairs}
    if k <= 24:
        mid = (float(off.min()) + float(off.max())) / 2
        for (r, c), v in np.ndenumerate(cos_KK):
            if r != c:
                tag = f"\n{level[(r, c)]}" if (r, c) in level else ""
                ax.text(c, r, f"{v:.2f}{tag}", ha="center", va="center", fontsize=7.5,
                        color="black" if v > mid else "white", fontweight="bold" if tag else "normal")
    for (r, c) in level:
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_xticks(range(k), [cluster_number(c, k) for c in range(k)], fontsize=8)
    ax.set_yticks(range(k), [cluster_number(c, k) for c in range(k)], fontsize=8)
    ref = stats.pairs[0].reference if stats.pairs else 0
    ax.set_title(f"Centroid cosine between clusters\nred: App. F pairs for cluster {cluster_number(ref, k)} "
                 "(0% farthest, 50% median, 100% closest)", fontsize=9.5)
    fig.colorbar(im, ax=ax, shrink=0.8, label="cosine between centroids")
    _save(fig, path)
