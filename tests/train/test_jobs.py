"""The job plan (TRAIN/plan.json): round trip, readiness from exports and done.json, growth in place."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from splitlm.core.errors import ConfigError, SchemaError
from splitlm.schemas.jobs import JobPlan
from splitlm.train import jobs
from splitlm.train.budget import Budget, branch_dir
from splitlm.train.config import TrainJob, export_dir

K = 3


def _jobs(out: Path, split_steps: tuple[int, ...], steps: int = 40, tokens_per_step: int = 8):
    pretrain = TrainJob(name="pretrain", out=out / "pretrain", run=Path("RUN"), size="tiny", arch="gpt2", init=None,
                        train_clusters=tuple(range(K)), eval_clusters=tuple(range(K)), steps=steps, warmup_steps=2,
                        batch_size=2, eval_every=10, save_every=10,
                        export_at=split_steps)  # fmt: skip
    branch_steps = tuple((steps - s) // K for s in split_steps)
    budget = Budget(tokens_per_step, steps, split_steps, branch_steps, "")
    branches = [
        replace(pretrain, name=f"split {s * tokens_per_step} c{c}", out=branch_dir(out, s * tokens_per_step, c, K),
                init=export_dir(pretrain.out, s * tokens_per_step), train_clusters=(c,), steps=b, warmup_steps=0,
                export_at=(), branch_cluster=c, split_at=s * tokens_per_step)
        for s, b in zip(split_steps, branch_steps) for c in range(K)
    ]  # fmt: skip
    return budget, pretrain, branches


def test_plan_round_trips_and_every_job_comes_back_as_it_was_planned(tmp_path):
    budget, pretrain, branches = _jobs(tmp_path, (0, 10))
    plan = jobs.write(tmp_path, jobs.build(budget, pretrain, branches, tmp_path))
    again = JobPlan.read(tmp_path / "plan.json")
    assert again == plan
    assert [jobs.train_job(j, tmp_path) for j in again.jobs] == [pretrain, *branches]
    assert [j.id for j in again.jobs] == ["pretrain"] + [f"split-{t:012d}/cluster-{c:02d}" for t in (0, 80)
                                                          for c in range(K)]
    assert {j.needs for j in again.jobs[1:]} == {"pretrain/exports/tokens-000000000000",
                                                 "pretrain/exports/tokens-000000000080"}


def test_a_branch_is_ready_once_its_export_exists_and_a_finished_job_never_again(tmp_path):
    budget, pretrain, branches = _jobs(tmp_path, (0, 10))
    plan = jobs.write(tmp_path, jobs.build(budget, pretrain, branches, tmp_path))
    assert [j.id for j in jobs.ready(plan, tmp_path)] == ["pretrain"]
    assert jobs.ready(plan, tmp_path, started={"pretrain"}) == []
    export_dir(pretrain.out, 0).mkdir(parents=True)  # pretraining passed the first split point
    ready = [j.id for j in jobs.ready(plan, tmp_path, started={"pretrain"})]
    assert ready == [f"split-000000000000/cluster-{c:02d}" for c in range(K)]
    (branches[1].out).mkdir(parents=True)
    (branches[1].out / "done.json").write_text("{}")
    ready = [j.id for j in jobs.ready(plan, tmp_path, started={"pretrain"})]
    assert ready == ["split-000000000000/cluster-00", "split-000000000000/cluster-02"]
    assert jobs.finished(plan, tmp_path) == {"split-000000000000/cluster-01"}


def test_adding_a_split_point_grows_the_plan_in_place(tmp_path):
    budget, pretrain, branches = _jobs(tmp_path, (10,))
    first = jobs.write(tmp_path, jobs.build(budget, pretrain, branches, tmp_path))
    budget2, pretrain2, branches2 = _jobs(tmp_path, (20,))
    grown = jobs.write(tmp_path, jobs.build(budget2, pretrain2, branches2, tmp_path))
    assert grown.split_steps == [10, 20]
    assert grown.jobs[0].job["export_at"] == [10, 20]
    assert [j.id for j in grown.jobs[1:]] == sorted(j.id for j in first.jobs[1:] + grown.jobs[1 + K:])
    assert len(grown.jobs) == 1 + 2 * K
    assert jobs.write(tmp_path, jobs.build(budget, pretrain, branches, tmp_path)) == grown  # nothing new: unchanged


def test_a_plan_for_another_run_is_refused_naming_the_job(tmp_path):
    budget, pretrain, branches = _jobs(tmp_path, (10,))
    jobs.write(tmp_path, jobs.build(budget, pretrain, branches, tmp_path))
    before = (tmp_path / "plan.json").read_bytes()
    other = [replace(branches[0], seed=7)]
    with pytest.raises(ConfigError, match=r"plan.json: job split-000000000080/cluster-00 was planned with other seed"):
        jobs.write(tmp_path, jobs.build(budget, pretrain, other, tmp_path))
    with pytest.raises(ConfigError, match=r"plan.json: planned for 40 steps"):
        jobs.write(tmp_path, jobs.build(replace(budget, total_steps=41), pretrain, branches, tmp_path))
    assert (tmp_path / "plan.json").read_bytes() == before


def test_a_damaged_or_newer_plan_is_one_clear_error(tmp_path):
    budget, pretrain, branches = _jobs(tmp_path, (10,))
    jobs.write(tmp_path, jobs.build(budget, pretrain, branches, tmp_path))
    raw = json.loads((tmp_path / "plan.json").read_text())
    raw["jobs"][1]["job"]["gpus"] = 2
    (tmp_path / "plan.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="unknown fields gpus"):
        jobs.train_job(JobPlan.read(tmp_path / "plan.json").jobs[1], tmp_path)
    raw["format_version"] = 9
    (tmp_path / "plan.json").write_text(json.dumps(raw))
    with pytest.raises(SchemaError, match="plan.json: unsupported job plan format 9"):
        jobs.read(tmp_path)
