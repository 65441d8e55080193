"""`train fit` and `train plan`: fit a scaling law to a table of runs, then plan a split from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer


def _floats(text: str, flag: str) -> tuple[float, ...]:
    from splitlm.core.errors import ConfigError

    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated numbers") from err


def _bounds(items: list[str]) -> dict[str, tuple[float, float]]:
    from splitlm.core.errors import ConfigError

    bounds = {}
    for item in items:
        name, _, rng = item.partition("=")
        lo_hi = _floats(rng, "--bound")
        if len(lo_hi) != 2:
            raise ConfigError(f"--bound {item!r}: expected NAME=LO,HI (HI may be inf)")
        bounds[name.strip()] = (lo_hi[0], lo_hi[1])
    return bounds


def fit(
    table: Annotated[Path, typer.Argument(help="CSV or Parquet table of runs, e.g. TRAIN/losses.csv.")],
    out: Annotated[Path, typer.Option(help="Output folder: fit.json, predictions.csv, pred_vs_obs.png.")],
    law: Annotated[str, typer.Option(help="split (eq. 4.3), chinchilla (eq. 4.1) or liew-kato (eq. H.1).")] = "split",
    columns: Annotated[Optional[str], typer.Option(help="KEY=COLUMN or SQL expression for N, D, Dk, loss.")] = None,
    by: Annotated[Optional[str], typer.Option(help="Fit one law per value of this column, e.g. cluster.")] = None,
    train_where: Annotated[Optional[str], typer.Option(help='SQL condition for train rows, e.g. "n_params <= 1.3e9".')] = None,
    scenario: Annotated[str, typer.Option(help="all, low-d (low half of D) or low-d-dk (and of Dk) as train rows.")] = "all",
    residuals: Annotated[str, typer.Option(help="loss (the paper) or log (Epoch AI's Chinchilla fit).")] = "loss",
    keep: Annotated[str, typer.Option(help="LO,HI: losses outside are outliers.")] = "0.5,4.0",
    drop_highest: Annotated[int, typer.Option(help="Also drop this many of the highest losses.")] = 0,
    bound: Annotated[Optional[list[str]], typer.Option(help="NAME=LO,HI overrides a parameter range (repeat).")] = None,
    n_unit: Annotated[float, typer.Option(help="Parameters per law unit of N.")] = 1e9,
    token_unit: Annotated[float, typer.Option(help="Tokens per law unit of D and Dk (the paper's bounds: 1e9).")] = 1e9,
    starts: Annotated[int, typer.Option(help="Seeded random starts.")] = 8,
    hops: Annotated[int, typer.Option(help="Basin-hopping iterations per start.")] = 20,
    delta: Annotated[float, typer.Option(help="Huber delta.")] = 1e-3,
    seed: Annotated[int, typer.Option()] = 0,
    share: Annotated[bool, typer.Option(help="With --by: one law for all groups, each with its own floor (E0).")] = False,
    allow_underdetermined: Annotated[bool, typer.Option(
        help="Fit even when a law has fewer points than parameters.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print fit.json instead of the table.")] = False,
) -> None:
    """Fit a scaling law (Huber loss, basin-hopping) and score it on train and held-out rows."""
    from splitlm.core.errors import ConfigError
    from splitlm.train import flags
    from splitlm.train.scaling import report as fit_report
    from splitlm.train.scaling.fit import FitConfig
    from splitlm.train.scaling.laws import make_law
    from splitlm.train.scaling.table import TableSpec, parse_columns

    lo_hi = _floats(keep, "--keep")
    if len(lo_hi) != 2:
        raise ConfigError(f"--keep {keep!r}: expected LO,HI, e.g. 0.5,4")
    flags.out_folder(out)
    spec = TableSpec(
        columns=parse_columns(columns), keep=lo_hi, drop_highest=drop_highest, by=by,
        train_where=train_where, scenario=scenario, n_unit=n_unit, token_unit=token_unit,  # type: ignore[arg-type]
    )
    cfg = FitConfig(delta=delta, residuals=residuals, starts=starts, hops=hops, seed=seed, share=share,  # type: ignore[arg-type]
                    allow_underdetermined=allow_underdetermined)
    report = fit_report.run_fit(table, make_law(law, _bounds(bound or [])), spec, cfg)
    result = fit_report.write(report, table, out)
    typer.echo(json.dumps(result, indent=2) if as_json else fit_report.render(result) + f"\n\nwrote {out}/fit.json")


def plan(
    fit_dir: Annotated[Path, typer.Argument(metavar="FIT", help="Folder written by `train fit --law split`.")],
    budget: Annotated[float, typer.Option(help="Total token budget D_T = D + K D'.")],
    size: Annotated[float, typer.Option(help="Model size N in parameters.")],
    k: Annotated[int, typer.Option("--k", help="Number of branches (clusters) K.")] = 16,
    cpt_step: Annotated[float, typer.Option(help="eps: tokens of a first CPT step per branch (D_split, smallest split); 0 = eq. 5.2 as written.")] = 2.0**20,
    flat_tol: Annotated[float, typer.Option(help="Loss tolerance of the flat range.")] = 0.005,
    extrapolate_from: Annotated[Optional[str], typer.Option(help="Sizes for f_s(N) = a N^b (default: the fit's sizes below --size).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Also draw loss vs pretraining fraction to this PNG.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Choose the split point t_s for a budget (eq. 5.1), D_split (eq. 5.2) and the flat range."""
    from splitlm.train import flags
    from splitlm.train.scaling import plan as plan_mod

    sizes = _floats(extrapolate_from, "--extrapolate-from") if extrapolate_from else ()
    cfg = plan_mod.PlanConfig(budget=budget, k=k, size=size, cpt_step=cpt_step, flat_tol=flat_tol, extrapolate_from=sizes)
    if plot is not None:
        flags.out_folder(plot.parent, "--plot")
    loss, spec = plan_mod.load_mixture(fit_dir)
    result = plan_mod.plan(loss, cfg, tuple(spec.get("sizes", ())))
    if plot is not None:
        plan_mod.plot_plan(loss, cfg, result, plot)
    typer.echo(json.dumps(result, indent=2) if as_json else plan_mod.render(result))


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)
    app.command("plan")(plan)
