"""The Ray executor: every job is one Ray task with the resources it asks for, on a Ray cluster that
is joined (`--ray-address`) or started locally (`core.ray_session`).

A task whose worker dies (a lost node, an OOM kill, SIGKILL) is retried up to `retries` times by Ray;
the retry resumes from the job's newest Trainer checkpoint, and its loss rows past that checkpoint
are dropped first (`runner`), so no row is written twice. The workers' progress lines reach the
driver (Ray prefixes them with the worker's pid). TRAIN and the run's shards must be on a
filesystem every node sees.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from splitlm.core.atomic import atomic_write_text
from splitlm.core.ray_session import import_ray
from splitlm.schemas.jobs import PlannedJob
from splitlm.train import jobs

RETRIES = 3


WORKER_FILE = "worker.json"  # in the job's folder: the host and pid running it now (for operators and tests)


def _run_planned(run: Callable[[PlannedJob], Any], planned: dict[str, Any], train: str) -> Any:
    job = PlannedJob.model_validate(planned)
    folder = jobs.folder(job, Path(train))
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / WORKER_FILE, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}) + "\n")
    return run(job)


class RayPool:
    """Submits jobs as Ray tasks; Ray queues those that wait for resources, so the pool never refuses one."""

    def __init__(self, run: Callable[[PlannedJob], Any], train: Path, cpus_per_job: int = 1, gpus_per_job: int = 0,
                 retries: int = RETRIES):
        self._train = str(train)
        self.capacity = 1 << 30
        ray = import_ray()
        self._ray = ray
        self._run = run
        self._remote = ray.remote(_run_planned).options(
            num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=retries, retry_exceptions=False)

    def submit(self, job: PlannedJob) -> Hashable:
        return self._remote.remote(self._run, job.model_dump(), self._train)

    def wait(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, Any]]:
        ready, _ = self._ray.wait(handles, num_returns=1, timeout=timeout)
        return [(h, self._ray.get(h)) for h in ready]
