"""`train fit` end to end: fit one law per group, score train and test rows, write FIT/.

FIT/fit.json      law, params (paper names, law units), objective, metrics {train, test}, units,
                  bounds, rows read/dropped, fit settings; with --by also per-group results and the
                  average law (mean of the group laws against the mean observed loss)
FIT/predictions.csv  every kept row with its group, inputs, observed and predicted loss, train flag
FIT/pred_vs_obs.png  predicted vs observed loss, train and test (one panel per group)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from splitlm.core.atomic import atomic_write_text
from splitlm.core.errors import ConfigError
from splitlm.train.scaling import identify, shared
from splitlm.train.scaling.fit import FitConfig, FitResult, fit_law, metrics
from splitlm.train.scaling.laws import Law
from splitlm.train.scaling.table import Runs, TableSpec, load_runs


@dataclass(frozen=True, eq=False)
class FitReport:
    law: Law
    cfg: FitConfig
    spec: TableSpec
    runs: Runs
    results: dict[str, FitResult]
    frame: pl.DataFrame  # runs.frame plus `_pred`
    seconds: float
    warnings: list[str] = field(default_factory=list)


def run_fit(table: Path, law: Law, spec: TableSpec, cfg: FitConfig) -> FitReport:
    """Fit `law` to the train rows of each group of `table` (or one shared law) and predict every kept row.

    Refuses (ConfigError) a law with fewer train points than parameters unless
    `cfg.allow_underdetermined`; parameters the data cannot pin down are reported as warnings.
    """
    t0 = time.perf_counter()
    runs = load_runs(table, spec, law)
    if cfg.share and spec.by is None:
        raise ConfigError("--share: fits one law across the groups of --by; give --by too (e.g. --by cluster)")
    trains = {g: runs.frame.filter((pl.col("_group") == g) & pl.col("_train")) for g in runs.groups}
    points = {g: runs.points(t) for g, t in trains.items()}
    losses = {g: t["_loss"].to_numpy() for g, t in trains.items()}
    if cfg.share:
        who = f"{law.name} law shared by {len(points)} {spec.by} groups"
        warnings = identify.check(shared.share(law, runs.groups), {who: shared.pooled(points)}, cfg.allow_underdetermined)
        results = shared.fit_shared(law, points, losses, cfg)
    else:
        who = {g: f"{law.name} law" + (f" for {spec.by} {g}" if spec.by else "") for g in runs.groups}
        warnings = identify.check(law, {who[g]: points[g] for g in runs.groups}, cfg.allow_underdetermined)
        results = {g: fit_law(law, points[g], losses[g], cfg) for g in runs.groups}
    parts = [
        rows.with_columns(_pred=pl.Series(results[g].predict(runs.points(rows))))
        for g, rows in ((g, runs.frame.filter(pl.col("_group") == g)) for g in runs.groups)
    ]
    return FitReport(law, cfg, spec, runs, results, pl.concat(parts), time.perf_counter() - t0, warnings)


def _scores(frame: pl.DataFrame) -> dict:
    return {
        name: metrics(part["_pred"].to_numpy(), part["_loss"].to_numpy())
        for name, part in (("train", frame.filter("_train")), ("test", frame.filter(~pl.col("_train"))))
    }


def _average(frame: pl.DataFrame, n_groups: int) -> dict:
    """Scores of the mixture law (mean over groups) on the inputs every group was evaluated at."""
    keys = ["_N", "_D", "_Dk", "_train"]
    mean = frame.group_by(keys).agg(
        pl.col("_loss").mean(), pl.col("_pred").mean(), pl.col("_group").n_unique().alias("k")
    )
    return _scores(mean.filter(pl.col("k") == n_groups))


def report_dict(report: FitReport, table: Path) -> dict:
    """The content of fit.json."""
    law, spec, results = report.law, report.spec, report.results
    grouped = spec.by is not None
    params = {g: r.params for g, r in results.items()} if grouped else results["all"].params
    units = {"n_params": spec.n_unit, "tokens": spec.token_unit}
    out = {
        "law": law.name,
        "residuals": report.cfg.residuals,
        "params": params,
        "objective": {g: r.objective for g, r in results.items()} if grouped else results["all"].objective,
        "metrics": _scores(report.frame),
        "units": units,
        "bounds": {p.name: [p.lo, p.hi if np.isfinite(p.hi) else None] for p in law.params},
        "table": str(table),
        "columns": spec.columns,
        "by": spec.by,
        "train_where": spec.train_where,
        "scenario": spec.scenario,
        "sizes": sorted(float(round(n * spec.n_unit)) for n in report.frame.filter("_train")["_N"].unique()),
        "rows": {
            "read": report.runs.read,
            "dropped": report.runs.dropped,
            "train": int(report.frame["_train"].sum()),
            "test": int((~report.frame["_train"]).sum()),
        },
        "fit": {
            **asdict(report.cfg), "seconds": report.seconds, "local_runs": sum(r.local_runs for r in results.values())
        },
    }
    if report.warnings:
        out["warnings"] = report.warnings
    raw = {g: law.raw_params(r.params, spec.n_unit, spec.token_unit) for g, r in results.items()}
    if raw[next(iter(raw))] is not None:
        out["params_raw_units"] = raw if grouped else raw["all"]
    if grouped:
        out["groups"] = {
            g: {"metrics": _scores(report.frame.filter(pl.col("_group") == g)), "objective": r.objective}
            for g, r in results.items()
        }
        out["average"] = _average(report.frame, len(results))
    return out


def _fmt(v: float | int | None) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) else f"{v:.4g}"


def render(out: dict) -> str:
    """A plain-text summary: parameters per group, then scores per group and split."""
    params = out["params"] if out["by"] else {"all": out["params"]}
    names = list(next(iter(params.values())))
    lines = [f"law {out['law']} ({out['residuals']} residuals), rows read {out['rows']['read']}, "
             f"train {out['rows']['train']}, test {out['rows']['test']}, dropped {out['rows']['dropped'] or 'none'}, "
             f"fit {out['fit']['seconds']:.1f} s",
             f"units: N / {out['units']['n_params']:.3g}, tokens / {out['units']['tokens']:.3g}", ""]
    lines.append("group     " + "".join(f"{n:>10}" for n in names))
    lines += [f"{g:<10}" + "".join(f"{_fmt(p[n]):>10}" for n in names) for g, p in params.items()]
    if "params_raw_units" in out:
        raw = out["params_raw_units"] if out["by"] else {"all": out["params_raw_units"]}
        lines += [f"{g + ' raw':<10}" + "".join(f"{_fmt(p[n]):>10}" for n in names) for g, p in raw.items()]
    lines += ["", f"{'group':<10}{'split':>6}{'n':>6}{'MAE':>10}{'MRE':>10}{'R2':>10}{'r':>10}{'objective':>12}"]
    scored = [("all", out["metrics"], out["objective"])] if not out["by"] else [
        (g, v["metrics"], v["objective"]) for g, v in out["groups"].items()
    ] + [("pooled", out["metrics"], None), ("average", out["average"], None)]
    for g, m, obj in scored:
        for split in ("train", "test"):
            s = m[split]
            row = "".join(f"{_fmt(s[k]):>10}" for k in ("mae", "mre", "r2", "r"))
            objective = _fmt(obj) if split == "train" and obj is not None else ""
            lines.append(f"{g:<10}{split:>6}{s['n']:>6}{row}{objective:>12}")
    lines += [f"warning: {text}" for text in out.get("warnings", [])]
    return "\n".join(lines)


def plot(report: FitReport, path: Path) -> None:
    """Predicted vs observed loss, one panel per group; colour = model size, hollow = test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(report.results)
    cols = min(4, len(groups))
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 1.2, 3.6 * rows), squeeze=False, layout="constrained")
    f = report.frame
    lo, hi = min(f["_loss"].min(), f["_pred"].min()), max(f["_loss"].max(), f["_pred"].max())
    sizes = np.log10(f["_N"].to_numpy() * report.spec.n_unit)
    norm = matplotlib.colors.Normalize(sizes.min(), sizes.max() if sizes.max() > sizes.min() else sizes.min() + 1)
    for i, (ax, g) in enumerate(zip(axes.flat, groups)):
        part = f.filter(pl.col("_group") == g)
        for is_train, style in ((True, {}), (False, {"facecolors": "none"})):
            sub = part.filter(pl.col("_train") == is_train)
            if sub.height:
                c = plt.cm.viridis(norm(np.log10(sub["_N"].to_numpy() * report.spec.n_unit)))
                ax.scatter(sub["_loss"], sub["_pred"], s=12, edgecolors=c, **({"c": c} if is_train else style),
                           label=f"{'train' if is_train else 'test'} ({sub.height})")
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
        s = _scores(part)
        text = "\n".join(f"{k} MAE {s[k]['mae']:.4f}" for k in ("train", "test") if s[k]["n"])
        ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=8, family="monospace")
        ax.set(title=f"{report.law.name} law" + (f", {report.spec.by} {g}" if report.spec.by else ""),
               xlabel="observed loss", xlim=(lo, hi), ylim=(lo, hi))
        if i % cols == 0:
            ax.set_ylabel("predicted loss")
        ax.legend(loc="lower right", fontsize=8)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    sm = plt.cm.ScalarMappable(norm=norm, cmap="viridis")
    fig.colorbar(sm, ax=axes, label="log10 parameters", shrink=0.8, pad=0.02)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(report: FitReport, table: Path, out_dir: Path) -> dict:
    """Write fit.json, predictions.csv and pred_vs_obs.png; return the fit.json content."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = report_dict(report, table)
    f, spec = report.frame, report.spec
    f.select(  # back in the table's units
        pl.col("_group").alias("group"), (pl.col("_N") * spec.n_unit).alias("n_params"),
        (pl.col("_D") * spec.token_unit).alias("pt_tokens"), (pl.col("_Dk") * spec.token_unit).alias("cpt_tokens"),
        pl.col("_loss").alias("loss"), pl.col("_pred").alias("predicted"), pl.col("_train").alias("train"),
    ).write_csv(out_dir / "predictions.csv")
    plot(report, out_dir / "pred_vs_obs.png")
    atomic_write_text(out_dir / "fit.json", json.dumps(out, indent=2) + "\n")  # last: the fit is complete
    return out
