"""TRAIN/zeroshot/: results.csv, routing.csv, results.md (a Markdown table) and zeroshot.png, each atomic."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

from splitlm.core.atomic import atomic_path, atomic_write_text

COLUMNS = ["task", "model", "split_at", "n", "acc", "acc_norm", "acc_stderr"]
MODELS = ("pretrained", "split-routed", "best-branch")


def _csv(rows: list[dict], columns: list[str]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def markdown(rows: list[dict]) -> str:
    """One line per task x split point: pretrained, split-routed and best-branch accuracy (acc_norm)."""
    base = {r["task"]: r for r in rows if r["model"] == "pretrained"}
    lines = ["| task | split at | n | pretrained | split-routed | best branch | split - pretrained |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["model"] != "split-routed":
            continue
        best = next(b for b in rows if b["model"] == "best-branch" and b["task"] == r["task"]
                    and b["split_at"] == r["split_at"])
        b = base[r["task"]]
        lines.append(f"| {r['task']} | {r['split_at']:,} | {r['n']} | {100 * b['acc']:.1f} ({100 * b['acc_norm']:.1f}) "
                     f"| {100 * r['acc']:.1f} ({100 * r['acc_norm']:.1f}) | {100 * best['acc']:.1f} "
                     f"({100 * best['acc_norm']:.1f}) | {100 * (r['acc'] - b['acc']):+.1f} ± "
                     f"{100 * r['acc_stderr']:.1f} |")
    return "Accuracy in % (acc_norm in brackets); ± is the split model's standard error.\n\n" + "\n".join(lines) + "\n"


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    base = {r["task"]: r for r in rows if r["model"] == "pretrained"}
    splits = sorted({r["split_at"] for r in rows if r["split_at"] >= 0})
    tasks = list(base)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(tasks)), 3.6))
    width = 0.8 / max(1, 2 * len(splits))
    for j, split_at in enumerate(splits):
        for m, model in enumerate(("split-routed", "best-branch")):
            sub = {r["task"]: r for r in rows if r["model"] == model and r["split_at"] == split_at}
            delta = [100 * (sub[t]["acc"] - base[t]["acc"]) for t in tasks]
            err = [100 * sub[t]["acc_stderr"] for t in tasks]
            x = np.arange(len(tasks)) + (2 * j + m - len(splits) + 0.5) * width
            ax.bar(x, delta, width, yerr=err, capsize=2, label=f"{model}, split at {split_at:,}",
                   hatch="//" if m else None, alpha=0.9)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(tasks)), tasks, rotation=30, ha="right")
    ax.set_ylabel("accuracy - pretrained (points)")
    ax.set_title("Routed zero-shot QA: split minus pretraining only")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write(folder: Path, rows: list[dict], routing: list[dict]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"results": folder / "results.csv", "routing": folder / "routing.csv", "table": folder / "results.md",
             "plot": folder / "zeroshot.png"}
    atomic_write_text(paths["routing"], _csv(routing, ["task", "split_at", "branch", "routed", "acc", "best"]))
    atomic_write_text(paths["table"], markdown(rows))
    _plot(rows, paths["plot"])
    atomic_write_text(paths["results"], _csv(rows, COLUMNS))  # last: its presence means the report is complete
    shutil.rmtree(folder / ".work", ignore_errors=True)  # the resumable scratch of `run.evaluate`
    return paths
