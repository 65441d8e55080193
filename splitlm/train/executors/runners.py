"""What an executor calls for one planned job: the Trainer in this process, or a DDP job of several.

Module-level and picklable (partials of these functions), so a spawned process or a Ray worker runs
them as well as this process does.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from splitlm.schemas.jobs import PlannedJob
from splitlm.train import jobs, runner
from splitlm.train.executors import ddp


def in_process(planned: PlannedJob, train: Path, threads: int = 0) -> runner.JobResult:
    return runner.train(replace(jobs.train_job(planned, train), threads=threads))


def multi_process(planned: PlannedJob, train: Path, procs: int, threads: int = 1) -> runner.JobResult:
    return ddp.launch(train, planned, procs, threads)
