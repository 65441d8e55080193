"""Fitting: Epoch AI's Chinchilla reference, synthetic split-law recovery, filters, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.optimize import minimize
from scipy.special import huber
from typer.testing import CliRunner

from splitlm.cli.train import app
from splitlm.core.errors import ConfigError
from splitlm.train.scaling.fit import FitConfig, draw_starts, fit_law, huber_objective, metrics
from splitlm.train.scaling.laws import Points, SplitLaw, make_law
from splitlm.train.scaling.plan import MixtureLoss, optimal_split
from splitlm.train.scaling.report import run_fit
from splitlm.train.scaling.table import EXAMPLE_SPLIT_PARAMS, TableSpec, load_runs, parse_columns, synthetic_table

ROOT = Path(__file__).resolve().parents[2]
HOFFMANN = ROOT.parent / "shared" / "reference" / "chinchilla_epoch_svg_extracted.csv"
SIGMA = 0.005
FAST = FitConfig(starts=2, hops=3)  # enough here: every start converges to the same valley
runner = CliRunner()


@pytest.fixture(scope="module")
def paper_grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 runs on the paper's grid from known split-law parameters, plus N(0, 0.005) noise."""
    path = tmp_path_factory.mktemp("synthetic") / "losses.csv"
    synthetic_table(SplitLaw(), EXAMPLE_SPLIT_PARAMS, sigma=SIGMA, seed=1).write_csv(path)
    return path


@pytest.mark.shared
def test_chinchilla_reference_through_the_cli(tmp_path: Path) -> None:
    """Epoch AI's replication of Hoffmann et al. (log residuals, Huber 1e-3, 5 highest dropped)."""
    assert HOFFMANN.exists(), f"{HOFFMANN} is missing: the test needs ../shared/reference"
    columns = 'N=Model Size,D="Training FLOP" / (6 * "Model Size"),loss=loss'
    result = runner.invoke(app, [
        "fit", str(HOFFMANN), "--law", "chinchilla", "--residuals", "log", "--columns", columns,
        "--drop-highest", "5", "--starts", "2", "--hops", "2", "--out", str(tmp_path / "fit"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert fit["rows"]["train"] == 240 and fit["rows"]["dropped"] == {"highest_losses": 5}
    assert abs(fit["objective"] - 1.0182740e-3) < 1e-8
    p, raw = fit["params"], fit["params_raw_units"]
    assert abs(p["alpha"] - 0.3473) < 0.002 and abs(p["beta"] - 0.3672) < 0.002 and abs(p["E"] - 1.8172) < 0.005
    assert raw["A"] == pytest.approx(482.01, rel=0.05) and raw["B"] == pytest.approx(2085.43, rel=0.05)
    assert "alpha" in result.output and "MAE" in result.output


def test_objective_is_scipy_huber_over_delta() -> None:
    rng = np.random.default_rng(0)
    law = make_law("chinchilla")
    x = Points(rng.uniform(0.1, 3, 50), rng.uniform(1, 100, 50), np.zeros(50))
    loss = rng.uniform(2, 3, 50)
    u = draw_starts(law, 1, rng)[0]
    for residuals in ("loss", "log"):
        value, _ = huber_objective(law, x, loss, FitConfig(residuals=residuals))(u)
        pred = law.predict(law.natural(u)[0], x)
        r = np.log(pred) - np.log(loss) if residuals == "log" else pred - loss
        assert value * 1e-3 == pytest.approx(huber(1e-3, r).sum(), rel=1e-12)


def test_unscaled_objective_stops_early_which_is_why_we_rescale(paper_grid: Path) -> None:
    """L-BFGS-B's test divides by max(|f|, 1): on the raw ~1e-3 objective it quits far too soon."""
    runs = load_runs(paper_grid, TableSpec(), SplitLaw())
    f = huber_objective(SplitLaw(), runs.points(), runs.frame["_loss"].to_numpy(), FitConfig())
    u0 = draw_starts(SplitLaw(), 1, np.random.default_rng(0))[0]
    raw = minimize(lambda u: tuple(v * 1e-3 for v in f(u)), u0, jac=True, method="L-BFGS-B")
    scaled = minimize(f, u0, jac=True, method="L-BFGS-B")
    assert scaled.fun * 1e-3 < 0.95 * raw.fun


def test_synthetic_split_law_reaches_noise_floor_and_plan(paper_grid: Path) -> None:
    """Held-out 2.7B rows: MAE within 0.001 of sigma sqrt(2/pi); the planned t_s within 3%."""
    report = run_fit(paper_grid, SplitLaw(), TableSpec(train_where="n_params <= 1.3e9"), FAST)
    test = report.frame.filter(~pl.col("_train"))
    assert set(test["_N"].unique().to_list()) == {2.7}
    scores = metrics(test["_pred"].to_numpy(), test["_loss"].to_numpy())
    assert abs(scores["mae"] - SIGMA * math.sqrt(2 / math.pi)) < 0.001
    assert scores["r2"] > 0.99
    truth = np.array([EXAMPLE_SPLIT_PARAMS[n] for n in SplitLaw().names])
    fitted, true = MixtureLoss((report.results["all"].theta,), 1e9, 1e9), MixtureLoss((truth,), 1e9, 1e9)
    for budget in (100e9, 400e9):
        planned, best = (optimal_split(m, 2.7e9, budget, 16, 2.0**20).t_s for m in (fitted, true))
        assert abs(planned / best - 1) < 0.03, (budget, planned, best)


def test_fit_is_deterministic_for_a_seed(paper_grid: Path) -> None:
    runs = load_runs(paper_grid, TableSpec(train_where="n_params = 350000000"), SplitLaw())
    train = runs.frame.filter("_train")
    x, y = runs.points(train), train["_loss"].to_numpy()
    cfg = FitConfig(starts=2, hops=2, seed=7)
    a, b = fit_law(SplitLaw(), x, y, cfg), fit_law(SplitLaw(), x, y, cfg)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.objective == b.objective


def test_scenarios_split_rows_by_the_median_setting(paper_grid: Path) -> None:
    runs = load_runs(paper_grid, TableSpec(scenario="low-d-dk", train_where="n_params <= 1.3e9"), SplitLaw())
    f = runs.frame
    d_mid = np.median(f["_D"].unique().to_numpy())
    dk_mid = np.median(f["_Dk"].unique().to_numpy())
    expect = (f["_N"] <= 1.3) & (f["_D"] <= d_mid) & (f["_Dk"] <= dk_mid)
    assert f["_train"].to_list() == expect.to_list()
    assert 0 < f["_train"].sum() < f.height / 4


def test_filters_count_every_dropped_row(tmp_path: Path) -> None:
    rows = synthetic_table(SplitLaw(), EXAMPLE_SPLIT_PARAMS, sizes=(1.3e9,), pt_tokens=(0.0, 10e9), cpt_tokens=(0.0, 5e9), sigma=0)
    other = rows.with_columns(eval_cluster=pl.lit(1, dtype=rows["eval_cluster"].dtype))  # another cluster's validation set: not this law
    spiky = rows.head(1).with_columns(eval_loss=pl.lit(9.0))
    untrained = rows.head(1).with_columns(pt_tokens=pl.lit(0, dtype=pl.Int64), cpt_tokens=pl.lit(0, dtype=pl.Int64))
    pl.concat([rows, other, spiky, untrained]).write_parquet(tmp_path / "t.parquet")
    runs = load_runs(tmp_path / "t.parquet", TableSpec(), SplitLaw())
    # D = D' = 0 is no model at all: undefined for the split law; the 3 own-cluster rows are kept.
    assert runs.read == 8 and runs.frame.height == 3
    assert runs.dropped == {"other_cluster_eval": 3, "outlier_loss": 1, "undefined_for_split": 1}


def test_columns_parse_and_reject() -> None:
    cols = parse_columns('N=Model Size,D="Training FLOP" / (6 * "Model Size")')
    assert cols["N"] == "Model Size" and cols["D"].startswith('"Training FLOP"') and cols["loss"] == "eval_loss"
    with pytest.raises(ConfigError):
        parse_columns("X=foo")


def test_grouped_fit_and_plan_through_the_cli(tmp_path: Path) -> None:
    table = tmp_path / "losses.csv"
    base = synthetic_table(SplitLaw(), EXAMPLE_SPLIT_PARAMS, sizes=(350e6, 1.3e9), sigma=SIGMA, seed=3, clusters=2)
    # cluster 1 is a harder domain: +0.1 loss everywhere
    base.with_columns(eval_loss=pl.col("eval_loss") + 0.1 * pl.col("cluster")).write_csv(table)
    out = tmp_path / "fit"
    result = runner.invoke(app, ["fit", str(table), "--by", "cluster", "--scenario", "low-d", "--starts", "2", "--hops", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    fit = json.loads((out / "fit.json").read_text())
    assert set(fit["params"]) == {"0", "1"} and fit["by"] == "cluster"
    assert fit["params"]["1"]["E0"] + fit["params"]["1"]["Ep"] > fit["params"]["0"]["E0"] + fit["params"]["0"]["Ep"]
    for split in ("train", "test"):
        assert fit["average"][split]["mae"] < 2 * SIGMA
        assert fit["average"][split]["n"] == fit["metrics"][split]["n"] // 2
    assert (out / "pred_vs_obs.png").stat().st_size > 10_000 and (out / "predictions.csv").exists()
    result = runner.invoke(app, ["plan", str(out), "--budget", "2e11", "--k", "2", "--size", "1.3e9", "--json", "--plot", str(tmp_path / "plan.png")])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["clusters"] == 2 and plan["t_s"] + 2 * plan["cpt_tokens"] == pytest.approx(2e11)
    assert plan["flat_range"][0] <= plan["t_s"] <= plan["flat_range"][1]
    assert plan["loss"] <= min(plan["loss_all_pretraining"], plan["loss_split_at_0"])
    assert (tmp_path / "plan.png").exists()


def test_liew_kato_fits_and_reports(paper_grid: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["fit", str(paper_grid), "--law", "liew-kato", "--starts", "1", "--hops", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert set(fit["params"]) == {"E", "A", "alpha1", "alpha2", "alpha3", "B", "beta"}
    assert fit["rows"]["dropped"] == {"undefined_for_liew-kato": 40}  # the D' = 0 rows
    assert fit["metrics"]["train"]["r2"] > 0.9


def test_user_errors_are_one_line_and_exit_1(paper_grid: Path, tmp_path: Path) -> None:
    train = Path(sys.executable).parent / "train"
    cases = [
        ([str(tmp_path / "missing.csv")], "no such table"),
        ([str(paper_grid), "--columns", "loss=val_loss"], "--columns loss"),
        ([str(paper_grid), "--keep", "9,10"], "outside --keep 9,10"),
        ([str(paper_grid), "--train-where", "n_params < 0"], "no training rows"),
    ]
    for args, message in cases:
        proc = subprocess.run([str(train), "fit", *args, "--out", str(tmp_path / "x")], capture_output=True, text=True)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and message in proc.stderr and proc.stderr.count("\n") == 1
    proc = subprocess.run([str(train), "plan", str(tmp_path / "x"), "--budget", "1e9", "--size", "1e8"], capture_output=True, text=True)
    assert proc.returncode == 1 and "no fit.json" in proc.stderr
