"""`train phonebook`: the memorisation experiment of the paper's Sec. 3.2 (Fig. 2) on synthetic facts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def _floats(text: str, flag: str) -> tuple[float, ...]:
    from splitlm.core.errors import ConfigError

    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated numbers like 0,0.5,1") from None


def phonebook_cmd(
    out: Annotated[Path | None, typer.Option("--out", help="DIR: phonebook.csv, phonebook.png, the runs.")] = None,
    budget: Annotated[str, typer.Option(help="limited (Fig. 2a) or sufficient (Fig. 2b).")] = "limited",
    paper: Annotated[
        bool, typer.Option("--paper", help="The paper's sizes: 6x8x256, 80,000 facts, batch 640.")
    ] = False,
    facts: Annotated[int | None, typer.Option(help="Facts per cluster (default: the preset's).")] = None,
    steps: Annotated[int | None, typer.Option(help="Total step budget T (default: the preset's).")] = None,
    fractions: Annotated[str | None, typer.Option(help="Pretraining shares of T, e.g. 0,0.2,0.5,1.")] = None,
    alphas: Annotated[str | None, typer.Option(help="Cluster overlaps (default 0,0.5,1; --quick: 0).")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="make demo-phonebook's sweep: overlap 0, splits at 0, 75% and 100% (3,600 steps, ~2 min).")] = False,
    seed: Annotated[int, typer.Option(help="Seeds the facts, the weights and the data order.")] = 0,
    parallel: Annotated[int, typer.Option(help="Jobs trained at once in local processes.")] = 2,
    threads: Annotated[int, typer.Option(help="torch threads per job.")] = 1,
    show: Annotated[
        Path | None, typer.Option("--show", help="Print the table of a finished sweep's phonebook.csv; no training.")
    ] = None,
) -> None:
    """Pretrain on both clusters, branch at each fraction of the budget, score exact-match fact accuracy."""
    from dataclasses import replace

    from splitlm.core.errors import ConfigError
    from splitlm.train import flags
    from splitlm.train.phonebook.config import preset, quick_preset

    if _shown(out, show):
        return
    flags.number("--parallel", parallel, least=1)
    flags.number("--threads", threads, least=1)
    if quick and (paper or budget != "limited"):
        raise ConfigError("--quick: the demo's CPU sweep at the limited budget; drop --paper and --budget")
    cfg = quick_preset(seed) if quick else preset("paper" if paper else "cpu", budget, seed)
    cfg = replace(
        cfg, facts=cfg.facts if facts is None else facts, total_steps=cfg.total_steps if steps is None else steps,
        fractions=cfg.fractions if fractions is None else _floats(fractions, "--fractions"),
        alphas=cfg.alphas if alphas is None else _floats(alphas, "--alphas"),
    )  # fmt: skip
    from splitlm.train.phonebook import plot
    from splitlm.train.phonebook.sweep import sweep

    start = time.perf_counter()
    rows = sweep(cfg, out, parallel=parallel, threads=threads)
    plot.write_csv(out / "phonebook.csv", rows)
    plot.write_plot(out / "phonebook.png", rows, f"{cfg.budget} budget ({cfg.total_steps:,} steps)")
    _print(rows)
    typer.echo(f"wrote {out / 'phonebook.csv'} and phonebook.png in {time.perf_counter() - start:.0f} s")


def _shown(out: Path | None, show: Path | None) -> bool:
    """With --show, print that sweep and say so; refuse both or neither of --out and --show."""
    from splitlm.core.errors import ConfigError

    if (show is None) == (out is None):
        raise ConfigError("train phonebook: give --out DIR (run a sweep) or --show CSV (print a finished one)")
    if show is None:
        return False
    from splitlm.train.phonebook.plot import read_csv

    _print(read_csv(show))
    return True


def _print(rows: list[dict]) -> None:
    from rich.table import Table

    from splitlm.cli.tables import console
    from splitlm.train.phonebook.plot import split_gains

    fracs = sorted({r["pt_fraction"] for r in rows})
    table = Table(title="Average fact accuracy (%) by share of steps spent pretraining")
    table.add_column("overlap")
    for f in fracs:
        table.add_column(f"{100 * f:g}%", justify="right")
    for alpha in sorted({r["alpha"] for r in rows}):
        acc = {r["pt_fraction"]: r["accuracy"] for r in rows if r["alpha"] == alpha}
        table.add_row(f"{100 * alpha:g}%", *[f"{100 * acc[f]:.1f}" for f in fracs])
    console().print(table)
    for g in split_gains(rows):
        typer.echo(_gain_line(g))


def _gain_line(g: dict) -> str:
    """One line per overlap: where splitting wins (the best interior fraction) and by how much."""
    won = min(g["over_split_at_0"], g["over_pretrain_only"]) > 0
    what = "splitting wins" if won else "no split beats both endpoints; the best"
    return (
        f"overlap {100 * g['alpha']:g}%: {what}: split after {100 * g['pt_fraction']:g}% of the steps, "
        f"{100 * g['accuracy']:.1f}%, {100 * g['over_pretrain_only']:+.1f} points against pretraining only, "
        f"{100 * g['over_split_at_0']:+.1f} against splitting at step 0"
    )


def register(app: typer.Typer) -> None:
    app.command("phonebook")(phonebook_cmd)
