"""The Ray executor on a real local Ray cluster (2 CPUs, started here) with the real Trainer: a branch's
worker is SIGKILLed after its first checkpoint; Ray retries the task, the job resumes from that
checkpoint, and every loss row equals the uninterrupted in-process run's (`split_train`)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pyarrow.parquet as pq
import pytest

from splitlm.core.ray_session import RaySession
from splitlm.train import jobs, runner
from splitlm.train.budget import plan_jobs
from splitlm.train.config import SplitConfig
from splitlm.train.evaluate import write_losses
from splitlm.train.executors.ray import WORKER_FILE, RayPool
from splitlm.train.executors.schedule import run_plan
from tests.train.conftest import SPLIT_FLAGS

VICTIM = "split-000000000000/cluster-01"  # a branch of 10 steps: checkpoints at steps 4 and 8


@pytest.mark.slow
def test_ray_run_survives_a_killed_branch_worker_with_the_losses_of_an_uninterrupted_run(
        tiny_run, split_train, tmp_path):
    import ray

    out = tmp_path / "train"
    budget, pretrain, branches = plan_jobs(SplitConfig(run=tiny_run, size="tiny", **SPLIT_FLAGS), out)
    plan = jobs.write(out, jobs.build(budget, pretrain, branches, out))
    victim = out / "branches" / VICTIM
    outcome: dict = {}

    def drive():
        try:
            outcome["results"] = run_plan(plan, out, RayPool(runner.train, cpus_per_job=1), poll_seconds=0.2)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            outcome["error"] = err

    with RaySession(log_to_driver=False):
        assert ray.cluster_resources()["CPU"] == os.cpu_count()
        driver = threading.Thread(target=drive)
        driver.start()
        deadline = time.time() + 600
        while not list(victim.glob("trainer/checkpoint-*/trainer_state.json")):
            assert driver.is_alive() and not (victim / "done.json").exists(), outcome
            assert time.time() < deadline
            time.sleep(0.01)
        pid = json.loads((victim / WORKER_FILE).read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        driver.join(timeout=900)
    assert "error" not in outcome, outcome.get("error")
    results = outcome["results"]
    assert set(results) == {j.id for j in plan.jobs}
    assert results[VICTIM].resumed_from > 0  # Ray retried it and it continued from its checkpoint
    assert json.loads((victim / WORKER_FILE).read_text())["pid"] != pid
    write_losses(out)
    rows = pq.read_table(out / "losses.parquet").to_pylist()
    # No duplicated or missing evaluation, and the very numbers of the in-process run: each job is
    # seeded and runs on one thread in both, so the order jobs ran in changes nothing.
    assert rows == pq.read_table(split_train / "losses.parquet").to_pylist()
