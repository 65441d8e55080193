"""The routed evaluation's report files: TRAIN/routed/routed_eval.csv, and routed_eval.png with one
panel per split point (per group: pretraining only, split routed by the router, and routed by
likelihood when it was measured)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from splitlm.core.atomic import atomic_write_text


def write(folder: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / "routed_eval.csv", text.getvalue())
    splits = sorted({r["split_at"] for r in rows})
    fig, axes = plt.subplots(len(splits), 1, figsize=(10, 3.2 * len(splits)), squeeze=False)
    for ax, split_at in zip(axes[:, 0], splits):
        sub = [r for r in rows if r["split_at"] == split_at]
        x = np.arange(len(sub))
        lik = all(r["likelihood_ppl"] is not None for r in sub)
        width = 0.27 if lik else 0.4
        ax.bar(x - width / (1 if lik else 2), [r["baseline_ppl"] for r in sub], width, label="pretraining only")
        ax.bar(x + (0 if lik else width / 2), [r["routed_ppl"] for r in sub], width,
               label=f"split, routed by the {sub[0]['router']} router")
        if lik:
            ax.bar(x + width, [r["likelihood_ppl"] for r in sub], width, label="split, routed by likelihood")
        ax.set_xticks(x, [f"{r['kind'][0]}:{r['group']}" for r in sub], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("perplexity")
        ax.set_title(f"split at {split_at:,} tokens")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "routed_eval.png", dpi=110)
    plt.close(fig)
