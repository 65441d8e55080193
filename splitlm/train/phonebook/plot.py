"""`phonebook.csv` and the Fig. 2-like plot, both written atomically and byte-stable for a seed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from splitlm.core.atomic import atomic_path, atomic_write_text
from splitlm.core.errors import ConfigError

CSV_COLUMNS = ("alpha", "budget", "pt_fraction", "accuracy")
"""Scripts read these names."""


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                "alpha": f"{r['alpha']:g}",
                "budget": r["budget"],
                "pt_fraction": f"{r['pt_fraction']:g}",
                "accuracy": f"{r['accuracy']:.6f}",
            }
        )
    atomic_write_text(path, buf.getvalue())


def read_csv(path: Path) -> list[dict]:
    """The rows of a `phonebook.csv` (as `write_csv` wrote them); a one-line error naming the file otherwise."""
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != tuple(CSV_COLUMNS):
                raise ConfigError(f"{path}: columns {reader.fieldnames}, a phonebook.csv has {list(CSV_COLUMNS)}")
            rows = [{"alpha": float(r["alpha"]), "budget": int(r["budget"]), "pt_fraction": float(r["pt_fraction"]),
                     "accuracy": float(r["accuracy"])} for r in reader]
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: not a phonebook.csv ({err})") from None
    if not rows:
        raise ConfigError(f"{path}: no rows")
    return rows


def write_plot(path: Path, rows: list[dict], title: str) -> None:
    """Average fact accuracy vs % of the total steps spent pretraining, one curve per alpha (Fig. 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for alpha in sorted({r["alpha"] for r in rows}):
        pts = sorted((r["pt_fraction"], r["accuracy"]) for r in rows if r["alpha"] == alpha)
        ax.plot([100 * f for f, _ in pts], [a for _, a in pts], marker="o", label=f"{100 * alpha:g}% overlap")
    ax.set(
        xlabel="% of total steps as pretraining", ylabel="avg fact accuracy", ylim=(-0.03, 1.03), title=title
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def split_gains(rows: list[dict]) -> list[dict]:
    """Per alpha, where splitting wins: the best fraction strictly between 0 and 1, its accuracy and
    its margin (accuracy points, may be negative) over each endpoint."""
    gains = []
    for alpha in sorted({r["alpha"] for r in rows}):
        acc = {r["pt_fraction"]: r["accuracy"] for r in rows if r["alpha"] == alpha}
        inner = [f for f in sorted(acc) if 0 < f < 1]
        if 0 not in acc or 1 not in acc or not inner:
            continue
        best = max(inner, key=lambda f: (acc[f], -f))
        gains.append(
            {
                "alpha": alpha,
                "pt_fraction": best,
                "accuracy": acc[best],
                "over_split_at_0": acc[best] - acc[0],
                "over_pretrain_only": acc[best] - acc[1],
            }
        )
    return gains
