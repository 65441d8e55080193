"""Render an inspect summary (plain JSON numbers) into CSVs, PNGs, `report.md` and a terminal table.

Every file in `RUN/inspect/` except `manifest.json` is a pure function of `summary.json`, so the
same summary gives the same bytes, and a test can re-render shipped files to check them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from splitlm.core.markdown import cell
from splitlm.curate.inspect.domains import DomainStats
from splitlm.curate.inspect.plots import (
    PAPER_TABLE5,
    plot_domains,
    plot_routing,
    plot_routing_cv,
    plot_similarity,
)
from splitlm.curate.inspect.routing import PrefixRow
from splitlm.curate.inspect.routing_cv import CV_COLUMNS, CvRow
from splitlm.curate.inspect.similarity import Pair, SimilarityStats
from splitlm.schemas.layout import cluster_name, cluster_number

ROUTING_COLUMNS = ("prefix_tokens", "windows", "distinct_prefixes", "r_at_1", "r_at_5", "route_top1", "route_top3",
                   "paper_r_at_1", "paper_r_at_5", "learned_top1", "learned_top3", "learned_ece", "centroid_ece")


def domains_from(summary: dict[str, Any]) -> DomainStats:
    d = summary["domains"]
    return DomainStats(d["field"], d["labels"], np.array(d["counts"], dtype=np.int64).reshape(len(d["labels"]), -1))


def routing_from(summary: dict[str, Any]) -> list[PrefixRow]:
    return [PrefixRow(**row) for row in summary["routing"]["rows"]]


def routing_cv_from(summary: dict[str, Any]) -> list[CvRow]:
    """The cross-validated routing rows; [] for a summary written before they existed."""
    return [CvRow(**row) for row in summary.get("routing_cv", {}).get("rows", [])]


def similarity_from(summary: dict[str, Any]) -> SimilarityStats:
    s = summary["similarity"]
    return SimilarityStats(np.array(s["cosine"], dtype=np.float64), [Pair(**p) for p in s["pairs"]])


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _f(x: float, digits: int = 4) -> str:
    return "" if x is None or x != x else f"{x:.{digits}f}"


def render_files(summary: dict[str, Any], out: Path) -> None:
    """Every inspect file but the manifest, from the summary alone."""
    dom, rows, sim = domains_from(summary), routing_from(summary), similarity_from(summary)
    k = summary["k"]
    names = [cluster_name(c, k) for c in range(k)]
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    (out / "domains.csv").write_text(_csv(
        ["label", "windows", "top_cluster", "top_share", "entropy_bits", "effective_clusters"]
        + [f"n_{cluster_number(c, k)}" for c in range(k)] + [f"share_{cluster_number(c, k)}" for c in range(k)],
        [[lab, int(n_K.sum()), int(tc), _f(ts), _f(h), _f(2.0 ** h, 2), *map(int, n_K), *(_f(s) for s in s_K)]
         for lab, n_K, s_K, tc, ts, h in zip(dom.labels, dom.counts_LK, dom.shares_LK, dom.top_cluster_L,
                                              dom.top_share_L, dom.entropy_bits_L)]))
    paper = {p: PAPER_TABLE5.get(p, (None, None)) for p in (r.prefix_tokens for r in rows)}
    (out / "routing_recall.csv").write_text(_csv(list(ROUTING_COLUMNS), [
        [r.prefix_tokens, r.windows, r.distinct_prefixes, _f(r.r_at_1), _f(r.r_at_5), _f(r.route_top1),
         _f(r.route_top3), _f(paper[r.prefix_tokens][0]), _f(paper[r.prefix_tokens][1]), _f(r.learned_top1),
         _f(r.learned_top3), _f(r.learned_ece), _f(r.centroid_ece)] for r in rows]))
    cv = routing_cv_from(summary)
    if cv:
        (out / "routing_cv.csv").write_text(_csv(list(CV_COLUMNS), [
            [r.router, r.prefix_tokens, r.split, r.n, _f(r.top1), _f(r.top1_low), _f(r.top1_high), _f(r.ece)]
            for r in cv]))
        plot_routing_cv(cv, k, summary["router_prefix_tokens"], out / "routing_cv.png")
    (out / "similarity.csv").write_text(_csv(["cluster", *names], [
        [names[c], *(_f(v) for v in sim.cos_KK[c])] for c in range(k)]))
    (out / "pairs.csv").write_text(_csv(["similarity", "reference", "partner", "cosine", "clusters"], [
        [p.similarity, p.reference, p.partner, _f(p.cosine), f"{p.reference},{p.partner}"] for p in sim.pairs]))
    nearest = [sim.neighbours(i) for i in range(k)]
    (out / "clusters.csv").write_text(_csv(
        ["cluster", "windows", "top_label", "purity", f"routing_top1_at_{summary['router_prefix_tokens']}", "routing_sample", "nearest",
         "nearest_cosine"],
        [[c["name"], c["windows"], c["top_label"], _f(c["purity"]), _f(c["routing"]), c["routing_sample"],
          " ".join(cluster_number(j, k) for j in nearest[i]), _f(sim.cos_KK[i, nearest[i][0]]) if nearest[i] else ""]
         for i, c in enumerate(summary["clusters"])]))
    plot_domains(dom, out / "domains.png")
    plot_routing(rows, k, summary["sample"]["split"], summary["router_prefix_tokens"], out / "routing_recall.png")
    plot_similarity(sim, out / "similarity.png")
    (out / "report.md").write_text(render_report(summary))


def render_report(summary: dict[str, Any]) -> str:
    dom, rows, sim = domains_from(summary), routing_from(summary), similarity_from(summary)
    k, s = summary["k"], summary["sample"]
    lines = ["# Inspect report", "",
             f"K = {k} clusters over {summary['windows']:,} windows of {summary['window_tokens']:,} tokens; "
             f"embedder {summary['embedder']['model_id']} ({summary['embedder']['mode']}, "
             f"{summary['embedder']['precision']}). Routing measured on {s['windows']:,} windows drawn from "
             f"{ {'val': 'the validation split', 'train': 'the training split', 'all': 'all splits'}[s['split']]} "
             f"(seed {s['seed']}, {s['pool']:,} available).", ""]
    lines += _domains_section(dom, k)
    lines += _routing_section(rows, summary)
    lines += _routing_cv_section(routing_cv_from(summary), summary)
    lines += _similarity_section(sim)
    lines += ["## Clusters", "",
              f"| cluster | windows | top label | purity | routing@{summary['router_prefix_tokens']} (sample) "
              "| nearest (cosine) |",
              "|---|---:|---|---:|---:|---|"]
    for i, c in enumerate(summary["clusters"]):
        near = ", ".join(f"{cluster_number(j, k)} ({sim.cos_KK[i, j]:.2f})" for j in sim.neighbours(i))
        acc = "n/a" if c["routing"] is None else f"{c['routing']:.0%} ({c['routing_sample']})"
        lines.append(f"| [{c['name']}](../cards/{c['name']}.md) | {c['windows']:,} | {cell(c['top_label'])} | "
                     f"{c['purity']:.0%} | {acc} | {near} |")
    lines += ["", "Files: `domains.csv` (counts and shares per label), `clusters.csv`, `routing_recall.csv`, "
              + ("`routing_cv.csv` (cross-validated routing), " if routing_cv_from(summary) else "")
              + "`similarity.csv` (centroid cosines), `pairs.csv` (App. F pairs), `summary.json` (every number above).",
              ""]
    return "\n".join(lines)


def _domains_section(dom: DomainStats, k: int) -> list[str]:
    lines = [f"## Domains x clusters (paper Fig. 9): label = `{dom.field}`", "", "![domains](domains.png)", ""]
    if not dom.labelled:
        return lines + ["No labels were recorded at ingest (`--domain-field`), so only cluster sizes are shown.", ""]
    total = dom.counts_LK.sum()
    weighted = float((dom.top_share_L * dom.counts_LK.sum(1)).sum() / max(total, 1))
    purity = float(dom.counts_LK.max(0).sum() / max(total, 1))
    lines += [f"A label concentrated in one cluster has a top share near 100% and ~1 effective cluster (2^entropy); "
              f"spread evenly it would have 1/K = {1 / k:.0%} and {k}. Window-weighted top share: **{weighted:.0%}**; "
              f"cluster purity (windows in their cluster's largest label): **{purity:.0%}**.", "",
              "| label | windows | top cluster | top share | effective clusters |", "|---|---:|---:|---:|---:|"]
    for lab, n, tc, ts, h in zip(dom.labels, dom.counts_LK.sum(1), dom.top_cluster_L, dom.top_share_L,
                                 dom.entropy_bits_L):
        lines.append(f"| {cell(lab)} | {n:,} | {cluster_number(tc, k)} | {ts:.0%} | {2.0 ** h:.1f} |")
    return lines + [""]


def _routing_section(rows: list[PrefixRow], summary: dict[str, Any]) -> list[str]:
    mode, n = summary["embedder"]["mode"], rows[0].windows if rows else 0
    lines = ["## Prefix routing (paper Table 5, App. D)", "", "![routing](routing_recall.png)", "",
             f"R@1 / R@5: the window's stored embedding is the nearest / among the 5 nearest of all {n:,} sampled "
             "windows to its P-token prefix's embedding (the paper uses N = 10,000; a smaller pool is easier). "
             "Route top-1 / top-3: the prefix routes (router rule, biases included) to the window's own cluster / "
             f"has it among its 3 best. Router prefix: {summary['router_prefix_tokens']} tokens.", "",
             f"Embedding mode `{mode}`: " + (
                 "the stored vector reads only the window's first 256 word pieces (about as many GPT-2 tokens), "
                 "so a prefix of that length is nearly the same text and R@1 saturates by P = 256; `mean` covers "
                 "the whole window, which helps clustering but makes prefixes much weaker predictors."
                 if mode == "truncate" else
                 "the stored vector averages all 256-piece chunks of the window, so even long prefixes see only "
                 "part of what was embedded: recall rises slowly and stays below `truncate`'s."), "",
             f"{summary['routing']['texts_embedded']:,} distinct prefixes were embedded; "
             f"{summary['routing'].get('texts_from_routing', 0):,} more were read from the routing stage, which "
             "had embedded them; "
             f"{summary['routing'].get('vectors_reused', 0):,} prefixes whose first word pieces are exactly the stored "
             "vector's input reused it.", "",
             "Centroid ECE: expected calibration error (10 bins) of the centroid rule's probability for its "
             "choice, at the temperature fitted for P (`curate route`'s `probability`). Learned: the same for the "
             "run's learned router (`--router learned`), when it has one.", "",
             "| P tokens | R@1 | R@5 | route top-1 | route top-3 | centroid ECE | learned top-1 | learned top-3 | "
             "learned ECE | paper R@1 | paper R@5 | distinct prefixes |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        paper = PAPER_TABLE5.get(r.prefix_tokens)
        ref = f"{paper[0]:.3f} | {paper[1]:.3f}" if paper else "- | -"
        learned = " | ".join(_f(v, 3) or "-" for v in (r.learned_top1, r.learned_top3, r.learned_ece))
        lines.append(f"| {r.prefix_tokens} | {r.r_at_1:.3f} | {r.r_at_5:.3f} | {r.route_top1:.3f} | "
                     f"{r.route_top3:.3f} | {_f(r.centroid_ece, 3) or '-'} | {learned} | {ref} | "
                     f"{r.distinct_prefixes:,} |")
    return lines + [""]


def _routing_cv_section(cv: list[CvRow], summary: dict[str, Any]) -> list[str]:
    if not cv:
        return []
    info = summary["routing_cv"]
    routers = list(dict.fromkeys(r.router for r in cv))
    lines = ["## Routing accuracy by prefix length, cross-validated", "", "![routing cv](routing_cv.png)", "",
             (f"`cv`: {info['folds']}-fold cross-validation over {info['cv_windows']:,} of the {info['train_windows']:,} "
             f"training windows (a seeded sample; folds are blocks of {info['block']} consecutive windows). For each fold the "
             "routing stage's fit (temperatures, and the learned head with its balance and temperatures) is redone "
             "on the other folds only, so no window is routed by a fit that saw it; the centroid rule's centroids "
             "and biases come from clustering (which saw every window) and are not refitted. `val`: "
             f"{info['val_windows']:,} of the {info['val_pool']:,} held-out validation windows, routed by the routers "
             "the routing stage fitted on training windows. Interval: 95% Wilson score interval of top-1. ECE: "
             "expected calibration error (10 bins) of the router's probability for its choice."), "",
             "| P tokens | " + " | ".join(f"{r} cv top-1 [95%] | {r} cv ECE | {r} val top-1 [95%] (n)"
                                        for r in routers) + " |",
             "|---:|" + "---:|---:|---:|" * len(routers)]
    table = {(r.router, r.prefix_tokens, r.split): r for r in cv}
    for p in sorted({r.prefix_tokens for r in cv}):
        cells = []
        for name in routers:
            c, v = table[(name, p, "cv")], table[(name, p, "val")]
            cells += [_interval(c), _f(c.ece, 3) or "-", f"{_interval(v)} ({v.n:,})" if v.n else "-"]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines + [""]


def _interval(r: CvRow) -> str:
    return f"{r.top1:.3f} [{r.top1_low:.3f}, {r.top1_high:.3f}]" if r.n else "-"


def _similarity_section(sim: SimilarityStats) -> list[str]:
    k = len(sim.cos_KK)
    off = sim.cos_KK[~np.eye(k, dtype=bool)]
    lines = ["## Cluster similarity (paper App. F)", "", "![similarity](similarity.png)", ""]
    if k > 1:
        lines += [f"Centroid cosines range {off.min():.3f} to {off.max():.3f} (median {np.median(off):.3f}).", ""]
    if sim.pairs:
        lines += [f"Two-cluster experiment pairs for reference cluster {cluster_number(sim.pairs[0].reference, k)} (farthest = 0%, "
                  "median = 50%, closest = 100% similarity; `pairs.csv`):", "",
                  "| similarity | clusters | centroid cosine |", "|---|---|---:|"]
        lines += [f"| {p.similarity} | {cluster_number(p.reference, k)} + {cluster_number(p.partner, k)} | {p.cosine:.3f} |" for p in sim.pairs]
    return lines + [""]
