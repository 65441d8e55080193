"""`train split --engine ray` on a real local Ray cluster (2 CPUs, started by the command): a branch's
worker is SIGKILLed after its first checkpoint; Ray retries the task, the job resumes from that
checkpoint, and losses.csv is byte for byte the one `--engine local` wrote (`split_train`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from splitlm.train import runner
from splitlm.train.executors.ray import WORKER_FILE
from tests.train.conftest import SPLIT_FLAGS

pytestmark = pytest.mark.ray  # starts a local Ray cluster (conftest: one at a time)

TRAIN_BIN = Path(sys.executable).parent / "train"
VICTIM = "split-000000000000/cluster-01"  # a branch of 10 steps: checkpoints at steps 4 and 8


@pytest.mark.slow
def test_engine_ray_survives_a_killed_branch_worker_and_matches_engine_local(tiny_run, split_train, tmp_path):
    out = tmp_path / "train"
    cmd = [
        str(TRAIN_BIN), "split", str(tiny_run), "--out", str(out), "--size", "tiny",
        "--total-tokens", str(SPLIT_FLAGS["total_tokens"]), "--split-at", "0,3072", "--batch-size", "4",
        "--eval-every", "2048", "--eval-windows", "8", "--threads", "1", "--engine", "ray",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    victim = out / "branches" / VICTIM
    deadline = time.time() + 600
    while not list(victim.glob("trainer/checkpoint-*/trainer_state.json")):
        assert proc.poll() is None and not (victim / "done.json").exists(), proc.stdout.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.01)
    pid = json.loads((victim / WORKER_FILE).read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]
    result = runner.JobResult(**json.loads((victim / "done.json").read_text()))
    assert result.resumed_from > 0  # Ray retried it and it continued from its checkpoint
    assert json.loads((victim / WORKER_FILE).read_text())["pid"] != pid
    assert f"finished {VICTIM}: 10 steps, resumed from step {result.resumed_from}" in output
    assert "(_run_planned pid=" in output  # the workers' progress lines reach the driver
    # No duplicated or missing evaluation, and the very numbers of the local run: each job is seeded
    # and runs on one thread under both engines, so the order the jobs ran in changes nothing.
    assert (out / "losses.csv").read_bytes() == (split_train / "losses.csv").read_bytes()
