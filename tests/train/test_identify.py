"""Underdetermined fits are refused, with the parameters the data cannot pin down; --share pools groups."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from splitlm.cli.train import app
from splitlm.core.errors import ConfigError
from splitlm.train.scaling import identify, shared
from splitlm.train.scaling.laws import Points, SplitLaw, make_law
from splitlm.train.scaling.table import EXAMPLE_SPLIT_PARAMS, synthetic_table

D = np.repeat([1.0, 20.0, 50.0, 100.0], 10)
DK = np.tile(np.linspace(0.0, 30.0, 10), 4)


def test_one_model_size_leaves_the_size_terms_unpinned():
    one = Points(np.full(40, 1.3), D, DK)
    assert identify.unpinned(SplitLaw(), one) == ["Ns", "gamma1", "B", "kappa"]
    assert identify.unpinned(make_law("chinchilla"), one) == ["A", "alpha"]
    three = Points(np.repeat([0.35, 1.3, 2.7], 40), np.tile(D, 3), np.tile(DK, 3))
    assert identify.unpinned(SplitLaw(), three) == []
    # no continued pretraining anywhere: the Dk terms are invisible, and A / (c D^alpha2) is one coefficient
    no_cpt = identify.unpinned(SplitLaw(), Points(np.repeat([0.35, 1.3, 2.7], 4), np.tile([1.0, 5, 20, 80], 3),
                                                  np.zeros(12)))
    assert {"Ds", "gamma2", "alpha1", "c"} <= set(no_cpt) and "Ep" not in no_cpt and "A" not in no_cpt


def test_fewer_points_than_parameters_is_refused_naming_the_fit_and_parameters():
    six = Points(np.full(6, 8.5), np.array([49.0, 98, 147, 196, 0, 98]), np.array([0.0, 0, 0, 0, 12, 6]))
    fits = {"split law for cluster 3": six, "split law for cluster 4": six}
    with pytest.raises(ConfigError) as err:
        identify.check(SplitLaw(), fits, allow=False)
    text = str(err.value)
    assert text.startswith("split law for cluster 3: 6 points for 12 parameters; cannot pin down ")
    assert "Ns, gamma1" in text and "B, kappa" in text and "(and 1 more fits alike)" in text
    assert "--share" in text and "--allow-underdetermined" in text
    warnings = identify.check(SplitLaw(), fits, allow=True)
    assert len(warnings) == 2 and warnings[0].startswith("underdetermined: split law for cluster 3: 6 points")
    enough = Points(np.repeat([0.35, 1.3, 2.7], 40), np.tile(D, 3), np.tile(DK, 3))
    assert identify.check(SplitLaw(), {"split law": enough}, allow=False) == []


def test_shared_law_jacobian_matches_finite_differences():
    law = shared.share(SplitLaw(), ["0", "1", "2"])
    assert law.names[-3:] == ("E0[0]", "E0[1]", "E0[2]") and len(law.names) == 11 + 3
    x = Points(np.repeat([0.35, 1.3], 6), np.tile([5.0, 40.0], 6), np.tile([0.0, 1, 10], 4), group=np.arange(12) % 3)
    theta = identify.midpoint(law)
    pred, jac = law.predict_jacobian(theta, x)
    for i in range(len(theta)):
        step = np.zeros_like(theta)
        step[i] = 1e-6 * max(1.0, abs(theta[i]))
        numeric = (law.predict(theta + step, x) - law.predict(theta - step, x)) / (2 * step[i])
        np.testing.assert_allclose(jac[:, i], numeric, rtol=1e-4, atol=1e-7)
    base = SplitLaw().predict(law.group_theta(theta, 1), x.take(x.group == 1))
    np.testing.assert_allclose(pred[x.group == 1], base)


def test_share_fits_groups_that_alone_are_underdetermined(tmp_path):
    """Three clusters of 9 runs each (12 parameters apiece): refused alone, fitted shared with their offsets."""
    rows = synthetic_table(SplitLaw(), EXAMPLE_SPLIT_PARAMS, sizes=(350e6, 1.3e9, 2.7e9), pt_tokens=(20e9,),
                           cpt_tokens=(0.0, 5e9, 20e9), sigma=0.001, seed=4, clusters=3)
    table = tmp_path / "losses.csv"
    rows.with_columns(eval_loss=pl.col("eval_loss") + 0.1 * pl.col("cluster")).write_csv(table)
    args = ["fit", str(table), "--by", "cluster", "--starts", "2", "--hops", "2", "--out", str(tmp_path / "fit")]
    alone = CliRunner().invoke(app, args)
    assert alone.exit_code == 1 and isinstance(alone.exception, ConfigError)
    assert "split law for cluster 0: 9 points for 12 parameters" in str(alone.exception)
    result = CliRunner().invoke(app, [*args, "--share"])
    assert result.exit_code == 0, result.output
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    e0 = {g: p["E0"] for g, p in fit["params"].items()}
    assert e0["1"] - e0["0"] == pytest.approx(0.1, abs=0.01) and e0["2"] - e0["0"] == pytest.approx(0.2, abs=0.01)
    assert fit["params"]["0"]["A"] == fit["params"]["2"]["A"]  # everything but the floor is shared
    assert fit["fit"]["share"] is True and fit["metrics"]["train"]["mae"] < 0.005
    # one PT setting: c D^alpha2 is one number, so the data cannot pin down c and alpha2 (said, not hidden)
    assert any("cannot pin down" in w and "alpha2" in w for w in fit["warnings"]) and "warning:" in result.output
