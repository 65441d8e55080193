"""A job as a 2-process DDP job on CPUs (gloo, started by torchrun), against the same job in one process."""

from __future__ import annotations

import json

import pytest

from splitlm.core.errors import ConfigError
from splitlm.train import jobs, runner
from splitlm.train.budget import plan_jobs
from splitlm.train.config import SplitConfig
from splitlm.train.executors.ddp import launch
from tests.train.conftest import SPLIT_FLAGS

# Losses agree to this much (absolute, on losses near 7). Two processes each average their half of
# the batch and the all-reduce averages the halves: the same mean summed in another order, so each
# step's gradient differs from the one-process gradient by float32 rounding (~1e-7 relative), and
# AdamW carries that through 30 steps. A real difference (other rows, a doubled batch, a skipped
# step) moves the loss by 1e-2 or more at this learning rate.
TOLERANCE = 1e-3


@pytest.mark.slow
def test_a_two_process_ddp_job_has_the_losses_of_the_one_process_job(tiny_run, split_train, tmp_path):
    out = tmp_path / "train"
    budget, pretrain, branches = plan_jobs(SplitConfig(run=tiny_run, size="tiny", **SPLIT_FLAGS), out)
    plan = jobs.write(out, jobs.build(budget, pretrain, branches, out))
    result = launch(out, plan.jobs[0], procs=2, threads=1)
    assert result.steps == pretrain.steps and result.optimizer_steps == pretrain.steps
    rows = runner.read_rows(out / "pretrain" / "losses.jsonl")
    expected = runner.read_rows(split_train / "pretrain" / "losses.jsonl")
    key = lambda r: (r["step"], r["eval_cluster"])
    assert sorted(map(key, rows)) == sorted(map(key, expected))  # one row per evaluation: rank 0 alone wrote
    got = {key(r): r["eval_loss"] for r in rows}
    diffs = [abs(got[key(r)] - r["eval_loss"]) for r in expected]
    assert max(diffs) < TOLERANCE, max(diffs)
    assert sorted(p.name for p in (out / "pretrain" / "exports").iterdir()) == sorted(
        p.name for p in (split_train / "pretrain" / "exports").iterdir())
    print(json.dumps({"max_abs_loss_difference": max(diffs)}))


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tiny_run, tmp_path):
    _, pretrain, _ = plan_jobs(SplitConfig(run=tiny_run, size="tiny", **{**SPLIT_FLAGS, "batch_size": 3}), tmp_path)
    with pytest.raises(ConfigError, match="--batch-size 3: not divisible by the 2 processes"):
        runner.per_process_batch(pretrain, 2)
