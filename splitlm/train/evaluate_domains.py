"""Perplexity per known domain label, paper Table 4 style (`train eval --by-domain`).

For each label of the shard index's domain column (the values of the run's `--domain-field`) and
each split point, three perplexities over the label's validation windows, each window scored on
its tokens after the routing prefix:
- `pretrained`: the pretraining-only model (the baseline at D_T);
- `top_branch`: the one branch the label's windows route to most (ties: the lowest cluster id),
  scoring every window of the label, as the paper evaluates a known domain with one expert;
- `routed`: each window scored by the branch its own prefix routes to.
Windows already scored by that branch in the routed pass are not scored again. Writes
TRAIN/routed/by_domain.csv and by_domain.md next to routed_eval.csv.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from splitlm.core.atomic import atomic_write_text
from splitlm.schemas.layout import cluster_number

COLUMNS = ("split_at", "domain", "windows", "tokens", "top_branch", "top_share", "pretrained_ppl", "top_branch_ppl",
           "routed_ppl", "top_branch_change_pct", "routed_change_pct")


def top_branches(labels: list[str], routed_N: np.ndarray, n_clusters: int) -> dict[str, int]:
    """Label -> the cluster its windows route to most (ties: the lowest id)."""
    labels_N = np.asarray(labels, dtype=object)
    return {d: int(np.bincount(routed_N[labels_N == d], minlength=n_clusters).argmax()) for d in sorted(set(labels))}


def extra_routes(labels: list[str], routed_N: np.ndarray, top: dict[str, int]) -> np.ndarray:
    """[N] the top branch for windows that the routed pass did not score with it, -1 for the rest."""
    top_N = np.asarray([top[d] for d in labels], dtype=np.int64)
    return np.where(top_N != routed_N, top_N, -1)


def domain_rows(split_at: int, labels: list[str], routed_N: np.ndarray, top: dict[str, int], base_N: np.ndarray,
                split_N: np.ndarray, extra_N: np.ndarray, n_scored: int, n_clusters: int) -> list[dict]:
    """One row per label; `extra_N` holds the top branch's NLL sums where the routed pass used another branch."""
    labels_N = np.asarray(labels, dtype=object)
    top_N = np.asarray([top[d] for d in labels], dtype=np.int64)
    top_nll_N = np.where(top_N == routed_N, split_N, extra_N)
    rows = []
    for d in sorted(top):
        idx = np.flatnonzero(labels_N == d)
        tokens = len(idx) * n_scored
        base, best, routed = (math.exp(a[idx].sum() / tokens) for a in (base_N, top_nll_N, split_N))
        rows.append(dict(
            split_at=split_at, domain=d, windows=len(idx), tokens=tokens,
            top_branch=cluster_number(top[d], n_clusters), top_share=round(float(np.mean(routed_N[idx] == top[d])), 3),
            pretrained_ppl=round(base, 3), top_branch_ppl=round(best, 3), routed_ppl=round(routed, 3),
            top_branch_change_pct=round(100 * (best / base - 1), 2), routed_change_pct=round(100 * (routed / base - 1), 2),
        ))  # fmt: skip
    return rows


def markdown(rows: list[dict], label_field: str) -> str:
    head = ["split at", label_field, "windows", "top branch (share)", "pretrained ppl", "top-branch ppl",
            "routed ppl", "top-branch change", "routed change"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(
            f"| {r['split_at']:,} | {r['domain']} | {r['windows']} | {r['top_branch']} ({r['top_share']:.2f}) "
            f"| {r['pretrained_ppl']:.2f} | {r['top_branch_ppl']:.2f} | {r['routed_ppl']:.2f} "
            f"| {r['top_branch_change_pct']:+.2f}% | {r['routed_change_pct']:+.2f}% |"
        )
    return "\n".join(lines) + "\n"


def write(folder: Path, rows: list[dict], label_field: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / "by_domain.csv", text.getvalue())
    title = f"# Perplexity by {label_field} (paper Table 4 style)\n\n"
    atomic_write_text(folder / "by_domain.md", title + markdown(rows, label_field))


def read(folder: Path) -> list[dict]:
    """The rows of `folder`/by_domain.csv, as strings."""
    with (folder / "by_domain.csv").open() as fh:
        return list(csv.DictReader(fh))
