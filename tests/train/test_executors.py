"""The scheduling loop of the executors, on a stand-in for `runner.train` (the real Trainer runs in
test_split/test_runner): start order, branches starting while pretraining goes on, finished jobs not
run again, and a job whose input never appears."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from splitlm.core.errors import ConfigError
from splitlm.schemas.jobs import PlannedJob
from splitlm.train import jobs
from splitlm.train.config import export_dir
from splitlm.train.executors.local import local_pool
from splitlm.train.executors.schedule import run_plan
from tests.train.test_jobs import _jobs

TOKENS_PER_STEP = 8  # as _jobs plans


def fake_train(planned: PlannedJob, train: Path, threads: int = 0) -> str:
    """Writes the exports and done.json a job would, with timestamps; pretraining lingers after its first export."""
    job = replace(jobs.train_job(planned, train), threads=threads)
    log = job.out.parent / "events.jsonl" if job.branch_cluster is None else job.out.parents[2] / "events.jsonl"
    job.out.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        fh.write(json.dumps({"job": job.name, "event": "start", "t": time.time()}) + "\n")
    for i, step in enumerate(job.export_at):
        export_dir(job.out, step * TOKENS_PER_STEP).mkdir(parents=True)
        if i == 0 and len(job.export_at) > 1 and job.threads == PATIENT:
            _wait_for_a_branch(log)  # pretraining continues toward D_T while the executor starts branches
    (job.out / "done.json").write_text(json.dumps({"name": job.name, "threads": job.threads}))
    with open(log, "a") as fh:
        fh.write(json.dumps({"job": job.name, "event": "end", "t": time.time()}) + "\n")
    return job.name


PATIENT = 1  # threads=1 marks the run whose pretraining waits (up to a minute) for a branch to start


def _wait_for_a_branch(log: Path, seconds: float = 60.0) -> None:
    end = time.time() + seconds
    while time.time() < end and not any(
            e["event"] == "start" and not e["job"].startswith("pretrain") for e in _events(log.parent)):
        time.sleep(0.05)


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def test_in_process_runs_pretraining_first_then_every_branch_once(tmp_path):
    budget, pretrain, branches = _jobs(tmp_path, (0, 10))
    plan = jobs.write(tmp_path, jobs.build(budget, pretrain, branches, tmp_path))
    with local_pool(partial(fake_train, train=tmp_path, threads=3), parallel=1) as pool:
        results = run_plan(plan, tmp_path, pool, poll_seconds=0.01)
    assert set(results) == {j.id for j in plan.jobs}
    starts = [e["job"] for e in _events(tmp_path) if e["event"] == "start"]
    assert starts == [pretrain.name] + [b.name for b in branches]
    assert json.loads((branches[0].out / "done.json").read_text())["threads"] == 3
    with local_pool(partial(fake_train, train=tmp_path), parallel=1) as pool:  # a rerun: everything is finished
        assert run_plan(plan, tmp_path, pool, poll_seconds=0.01) == {}
    assert len(_events(tmp_path)) == 2 * len(plan.jobs)


def test_with_two_processes_branches_start_while_pretraining_continues(tmp_path):
    budget, pretrain, branches = _jobs(tmp_path, (0, 10))
    plan = jobs.write(tmp_path, jobs.build(budget, pretrain, branches, tmp_path))
    with local_pool(partial(fake_train, train=tmp_path, threads=PATIENT), parallel=2) as pool:
        results = run_plan(plan, tmp_path, pool, poll_seconds=0.05)
    assert set(results) == {j.id for j in plan.jobs}
    events = _events(tmp_path)
    pretrain_end = next(e["t"] for e in events if e["job"] == pretrain.name and e["event"] == "end")
    early = [e for e in events if e["event"] == "start" and e["job"] != pretrain.name and e["t"] < pretrain_end]
    assert early and all(e["job"].startswith("split 0 ") for e in early)  # only split-0 branches had their export


def test_a_job_whose_export_never_appears_is_an_error_naming_it(tmp_path):
    budget, pretrain, branches = _jobs(tmp_path, (0, 10))
    plan = jobs.build(budget, pretrain, branches, tmp_path)
    plan.jobs[0].job["export_at"] = [0]  # pretraining will not export the second split point
    with local_pool(partial(fake_train, train=tmp_path), parallel=1) as pool, pytest.raises(
            ConfigError, match=r"job split-000000000080/cluster-00 waits for pretrain/exports/tokens-000000000080"):
        run_plan(plan, tmp_path, pool, poll_seconds=0.01)
