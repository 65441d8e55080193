"""The phonebook sweep's plan (no training): which jobs wait for an export, the branches' warmup,
and the summary of where splitting wins."""

from dataclasses import replace

import pytest
from typer.testing import CliRunner

from splitlm.cli.train import app
from splitlm.core.errors import ConfigError
from splitlm.train.config import export_dir
from splitlm.train.phonebook.config import PhonebookConfig, preset, quick_preset
from splitlm.train.phonebook.plot import split_gains
from splitlm.train.phonebook.sweep import plan

CFG = PhonebookConfig(
    facts=12, size="phonebook-cpu", batch_size=4, total_steps=10, warmup_steps=4,
    fractions=(0.0, 0.5, 1.0), alphas=(0.0,), seed=4,
)  # fmt: skip


def test_every_branch_starts_from_the_export_at_its_split_point(tmp_path):
    pretrain, branches = plan(CFG, tmp_path, 0.0)
    assert pretrain.init is None and pretrain.export_at == (0, 5)
    step0 = export_dir(pretrain.out, 0)  # the pretraining run's initial weights, exported before its first step
    assert [(j.init, j.steps, j.warmup_steps) for j in branches[0.0]] == [(step0, 5, 1)] * 2
    want = export_dir(pretrain.out, 5 * 4 * 29)
    assert [(j.init, j.steps, j.warmup_steps) for j in branches[0.5]] == [(want, 2, 0)] * 2
    assert {j.seed for js in branches.values() for j in js} == {pretrain.seed}  # same initial weights


def test_split_gains_name_the_best_interior_fraction_and_its_margins():
    acc = {0.0: (0.35, 0.5), 0.25: (0.40, 0.6), 0.75: (0.65, 0.7), 1.0: (0.20, 0.8)}
    rows = [
        {"alpha": a, "pt_fraction": f, "accuracy": v[i]}
        for f, v in acc.items()
        for i, a in enumerate((0.0, 1.0))
    ]
    g0, g1 = split_gains(rows)
    assert (g0["alpha"], g0["pt_fraction"], g0["accuracy"]) == (0.0, 0.75, 0.65)
    assert g0["over_split_at_0"] == pytest.approx(0.30) and g0["over_pretrain_only"] == pytest.approx(0.45)
    assert g1["pt_fraction"] == 0.75 and g1["over_pretrain_only"] == pytest.approx(-0.1)  # no win at alpha 1
    assert split_gains([r for r in rows if r["pt_fraction"] in (0.0, 1.0)]) == []


def test_quick_preset_is_the_full_sweeps_points_at_overlap_0():
    full, quick = preset("cpu", "limited", seed=2), quick_preset(seed=2)
    assert quick.alphas == (0.0,) and set(quick.fractions) < set(full.fractions)
    assert replace(quick, fractions=full.fractions, alphas=full.alphas) == full  # same jobs, same numbers


@pytest.mark.parametrize("extra", [["--paper"], ["--budget", "sufficient"]])
def test_quick_refuses_other_presets_before_writing(tmp_path, extra):
    result = CliRunner().invoke(app, ["phonebook", "--out", str(tmp_path / "pb"), "--quick", *extra])
    assert isinstance(result.exception, ConfigError) and "--quick" in str(result.exception)
    assert not (tmp_path / "pb").exists()
