"""Split runs as plans: the baseline read at each split run's own D + K * D', exports kept by
--keep-checkpoints, and a split point added to a finished run that trains only the new branches."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pytest

from splitlm.core.errors import ConfigError
from splitlm.schemas.jobs import JobPlan
from splitlm.schemas.losses import LOSSES
from splitlm.train import evaluate
from splitlm.train.budget import plan_jobs
from splitlm.train.config import Execution, SplitConfig
from splitlm.train.split import add_split, prune_exports
from tests.train.conftest import SPLIT_FLAGS

TOKENS_PER_STEP = 512


def test_the_pretraining_run_evaluates_and_exports_at_each_split_runs_own_tokens(tiny_run, tmp_path):
    cfg = SplitConfig(run=tiny_run, size="tiny", **{**SPLIT_FLAGS, "split_at": (0, 4 * TOKENS_PER_STEP)})
    budget, pretrain, _ = plan_jobs(cfg, tmp_path)
    assert budget.total_steps == 30 and budget.split_totals(3) == (30, 28)  # 4 + 3 x 8: two steps short
    assert pretrain.eval_at == (28,) and 28 in pretrain.export_at and 4 in pretrain.export_at
    assert set(range(2, 30, 2)) <= set(pretrain.export_at)  # --checkpoint-every D_T / 20 = 1.5 steps -> 2
    text = budget.describe(3, cfg.total_tokens)
    assert "split at 2,048: D 2,048 + 3 x D' 4,096 = D_T 14,336, 1,024 short of D_T" in text


def _row(split_at, cluster, step, pt, cpt, loss):
    return {"size": "tiny", "arch": "gpt2", "n_params": 1, "n_params_non_embedding": 1, "pt_tokens": pt,
            "cpt_tokens": cpt, "cluster": cluster, "eval_cluster": cluster, "split_at": split_at, "step": step,
            "eval_loss": loss}


def test_compare_final_reads_the_baseline_at_the_split_runs_tokens():
    rows = [_row(-1, 0, 28, 28 * 512, 0, 5.0), _row(-1, 0, 30, 30 * 512, 0, 4.9),
            _row(2048, 0, 8, 2048, 8 * 512, 4.7)]
    rows += [_row(-1, k, 30, 30 * 512, 0, 4.9) for k in (1, 2)]  # K = 3: 2,048 + 3 x 4,096 = 28 steps
    pairs = evaluate.compare_final(pa.Table.from_pylist(rows, schema=LOSSES))
    assert pairs == [{"split_at": 2048, "cluster": 0, "baseline_tokens": 28 * 512, "baseline_loss": 5.0,
                      "split_total": 28 * 512, "split_loss": 4.7}]
    pairs = evaluate.compare_final(pa.Table.from_pylist(rows[1:], schema=LOSSES))  # added later: no row at 28
    assert pairs[0]["baseline_tokens"] == 30 * 512 and pairs[0]["split_total"] == 28 * 512


@pytest.mark.parametrize("keep, left", [("all", [2, 4, 6, 8]), ("split-points", [4, 8]), ("last", [8])])
def test_keep_checkpoints_bounds_the_exports_but_keeps_every_baseline(tmp_path, keep, left):
    plan = JobPlan.model_validate({"tokens_per_step": 512, "total_steps": 10, "split_steps": [4], "jobs": [
        {"id": "pretrain", "kind": "pretrain", "job": {"split_at": -1}, "steps": 10},
        {"id": "split-000000002048/cluster-00", "kind": "branch", "job": {"split_at": 2048}, "steps": 2}]})
    for step in (2, 4, 6, 8):
        (tmp_path / "pretrain" / "exports" / f"tokens-{step * 512:012d}").mkdir(parents=True)
    prune_exports(tmp_path, plan, 2, keep)  # K = 2: the split run's D + K * D' is 4 + 2 x 2 = 8 steps
    found = sorted(int(p.name.split("-")[1]) // 512 for p in (tmp_path / "pretrain" / "exports").iterdir())
    assert found == left


@pytest.mark.slow
def test_adding_a_split_point_trains_only_the_new_branches(split_train, tmp_path):
    out = tmp_path / "train"
    shutil.copytree(split_train, out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("done.json")}
    rows_before = evaluate.collect_losses(out).to_pylist()
    with pytest.raises(ConfigError, match=r"--add-split-at 6,200: no pretraining checkpoint there \(--exact\); "
                                          r"the nearest is at 6,144"):
        add_split(out, 6200, exact=True, ex=Execution(threads=1))
    assert json.loads((out / "split.json").read_text())["split_at"] == [0, 3072]  # refused: nothing changed
    add_split(out, 6200, clusters=(0,), ex=Execution(threads=1))  # from the checkpoint at 6,144 (step 12)
    assert {p: p.stat().st_mtime_ns for p in before} == before  # no finished job ran again
    new = sorted(p.parent.name for p in out.glob("branches/split-000000006144/*/done.json"))
    assert new == ["cluster-00"]  # --clusters 0: one new branch
    assert json.loads((out / "split.json").read_text())["split_at"] == [0, 3072, 6144]
    plan = JobPlan.read(out / "plan.json")
    assert plan.split_steps == [0, 6, 12] and len(plan.jobs) == 1 + 3 * 2 + 1
    rows = evaluate.collect_losses(out).to_pylist()
    assert [r for r in rows if r["split_at"] != 6144] == rows_before  # the table grew; old rows unchanged
    assert {r["cpt_tokens"] for r in rows if r["split_at"] == 6144} >= {6 * 512}  # (30 - 12) / 3 = 6 steps each
