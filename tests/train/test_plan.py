"""Planner: eq. 5.1 against brute force, eq. 5.2's root, never-split budgets, K = 1, one size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from splitlm.cli.train import app
from splitlm.core.errors import ConfigError
from splitlm.train.scaling.laws import SplitLaw
from splitlm.train.scaling.plan import (
    MixtureLoss,
    PlanConfig,
    d_split,
    fit_power_law,
    load_mixture,
    optimal_split,
    plan,
)
from splitlm.train.scaling.table import EXAMPLE_SPLIT_PARAMS, synthetic_table

NAMES = SplitLaw().names
N = 1.3e9


def _mixture(**overrides: float) -> MixtureLoss:
    p = {**EXAMPLE_SPLIT_PARAMS, **overrides}
    return MixtureLoss((np.array([p[n] for n in NAMES]),), 1e9, 1e9)


LINEAR_CPT = _mixture(alpha1=1.0, gamma2=1.0)  # dL/dD' is finite at D' = 0: eq. 5.2 has a root


def _brute_force(loss: MixtureLoss, budget: float, k: int, points: int = 200_001) -> tuple[float, float]:
    t = np.linspace(0.0, budget, points)
    f = loss(N, t, (budget - t) / k)
    return float(t[np.argmin(f)]), float(f.min())


@pytest.mark.parametrize("k", [16, 1])
def test_eq_5_2_root_when_alpha1_and_gamma2_are_one(k: int) -> None:
    root = d_split(LINEAR_CPT, N, k, eps=0.0)
    assert 0 < root < math.inf
    dD, dK = LINEAR_CPT.partials(N, root, 0.0)
    assert k * dD == pytest.approx(dK, rel=1e-6)  # K dL/dD = dL/dD' at D_split
    before, after = (LINEAR_CPT.partials(N, root * s, 0.0) for s in (0.5, 2.0))
    assert before[1] - k * before[0] > 0 > after[1] - k * after[0]
    # the eps-step definition tends to eq. 5.2 as the step shrinks
    assert d_split(LINEAR_CPT, N, k, eps=1e3) == pytest.approx(root, rel=1e-4)
    # and eq. 5.1 agrees: below D_split the best allocation is all pretraining, above it splits
    assert _brute_force(LINEAR_CPT, 0.9 * root, k)[0] == pytest.approx(0.9 * root)
    assert _brute_force(LINEAR_CPT, 1.5 * root, k)[0] < 1.5 * root


def test_eq_5_2_has_no_root_under_the_paper_bounds() -> None:
    loss = _mixture()  # alpha1 = gamma2 = 0.35 and 0.5: dL/dD' = -inf at D' = 0
    with pytest.raises(ConfigError, match="no finite root"):
        d_split(loss, N, 16, eps=0.0)
    eps_split = d_split(loss, N, 16, eps=2.0**20)
    assert 0 < eps_split < math.inf
    assert float(loss(N, eps_split * 1.01, 2.0**20)) < float(loss(N, eps_split * 1.01 + 16 * 2.0**20, 0.0))


@pytest.mark.parametrize("loss", [_mixture(), LINEAR_CPT], ids=["paper-bounds", "linear-cpt"])
@pytest.mark.parametrize("budget", [20e9, 400e9])
def test_optimum_matches_brute_force(loss: MixtureLoss, budget: float) -> None:
    p = plan(loss, PlanConfig(budget=budget, k=16, size=N, cpt_step=1.0))
    t_bf, f_bf = _brute_force(loss, budget, 16)
    assert p["loss"] <= f_bf + 1e-12
    assert p["t_s"] == pytest.approx(t_bf, abs=2 * budget / 200_000)
    assert p["t_s"] + 16 * p["cpt_tokens"] == pytest.approx(budget)
    lo, hi = p["flat_range"]
    assert lo <= p["t_s"] <= hi
    for edge in (lo, hi):  # the flat range ends where the loss leaves the 0.005 band
        if 0 < edge < budget:
            assert float(loss(N, edge, (budget - edge) / 16)) == pytest.approx(p["loss"] + 0.005, abs=5e-4)
    if p["compute_multiplier"] is not None:
        assert float(loss(N, p["compute_multiplier"] * budget, 0.0)) == pytest.approx(p["loss"], abs=1e-9)


def test_budget_below_d_split_never_splits() -> None:
    root = d_split(LINEAR_CPT, N, 16, eps=0.0)
    p = plan(LINEAR_CPT, PlanConfig(budget=0.8 * root, k=16, size=N, cpt_step=0.0))
    assert not p["split"] and p["t_s"] == 0.8 * root and p["cpt_tokens"] == 0.0
    assert p["loss"] == p["loss_all_pretraining"] and p["compute_multiplier"] == 1.0
    assert p["d_split"] == pytest.approx(root) and p["d_split_rule"].startswith("eq. 5.2")
    # the paper's law with a first step of eps tokens: a budget of a few steps never splits either
    q = plan(_mixture(), PlanConfig(budget=5e6, k=16, size=N))
    assert not q["split"] and q["d_split"] > 5e6 and "eps = 1.04858e+06" in q["d_split_rule"]


def test_k_equal_one() -> None:
    p = plan(_mixture(), PlanConfig(budget=100e9, k=1, size=N))
    assert p["t_s"] + p["cpt_tokens"] == pytest.approx(100e9)
    assert p["loss"] <= min(p["loss_all_pretraining"], p["loss_split_at_0"])
    assert p["t_s"] == pytest.approx(_brute_force(_mixture(), 100e9, 1)[0], rel=1e-3)


def test_mixture_is_the_mean_of_cluster_laws() -> None:
    a, b = _mixture(), _mixture(E0=2.3)
    both = MixtureLoss(a.thetas + b.thetas, 1e9, 1e9)
    assert float(both(N, 40e9, 5e9)) == pytest.approx((float(a(N, 40e9, 5e9)) + float(b(N, 40e9, 5e9))) / 2)
    assert plan(both, PlanConfig(budget=100e9, k=16, size=N))["t_s"] == pytest.approx(
        plan(a, PlanConfig(budget=100e9, k=16, size=N))["t_s"], rel=1e-3
    )  # a constant shift of one cluster does not move the optimum


def test_power_law_extrapolation() -> None:
    sizes = np.array([1e8, 3.5e8, 7.6e8, 1.3e9])
    a, b = fit_power_law(sizes, 3.0 * sizes**-0.07)
    assert a == pytest.approx(3.0) and b == pytest.approx(-0.07)
    p = plan(_mixture(), PlanConfig(budget=400e9, k=16, size=2.7e9), fitted_sizes=tuple(sizes) + (2.7e9,))
    ex = p["extrapolation"]
    assert ex["sizes"] == list(sizes) and abs(ex["predicted_fraction"] - p["fraction"]) < 0.03
    with pytest.raises(ConfigError):
        fit_power_law(sizes[:1], np.ones(1))


def test_one_model_size_table_fits_and_plans(tmp_path: Path) -> None:
    table = tmp_path / "losses.csv"
    synthetic_table(SplitLaw(), EXAMPLE_SPLIT_PARAMS, sizes=(N,), sigma=0.005, seed=5).write_csv(table)
    runner = CliRunner()
    result = runner.invoke(app, ["fit", str(table), "--starts", "2", "--hops", "3", "--out", str(tmp_path / "fit")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["plan", str(tmp_path / "fit"), "--budget", "1e11", "--size", str(N), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    truth = optimal_split(_mixture(), N, 1e11, 16, 2.0**20)
    assert got["t_s"] == pytest.approx(truth.t_s, rel=0.03) and got["extrapolation"] is None
    assert "warning" not in got
    result = runner.invoke(app, ["plan", str(tmp_path / "fit"), "--budget", "1e11", "--size", "2.7e9"])
    assert result.exit_code == 0 and "warning: the fit saw one model size" in result.output
    assert "optimal split point t_s" in result.output and "D_split" in result.output


def test_plan_needs_a_split_law_fit(tmp_path: Path) -> None:
    (tmp_path / "fit.json").write_text(json.dumps({"law": "chinchilla", "params": {}}))
    with pytest.raises(ConfigError, match="split-law fit"):
        load_mixture(tmp_path)
    with pytest.raises(ConfigError):
        PlanConfig(budget=1e9, k=0, size=N)
