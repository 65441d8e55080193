"""The scheduling loop every executor shares.

`run_plan(plan, out, pool)` starts each job as soon as `jobs.ready` says its input exists (the
pretraining job at once; a branch when the export at its split point appears), keeps at most
`pool.capacity` jobs running, and returns every job's result by id. A finished job (its
`done.json`) is not started again. A job that waits for an export no running job will write is an
error naming both, not a hang.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Protocol

from splitlm.core.errors import ConfigError
from splitlm.schemas.jobs import JobPlan, PlannedJob
from splitlm.train import jobs

POLL_SECONDS = 1.0  # how often to look for new exports while jobs run


class Pool(Protocol):
    capacity: int

    def submit(self, job: PlannedJob) -> Hashable: ...

    def wait(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, Any]]:
        """The (handle, result) pairs that finished within `timeout` (a failed job raises here)."""
        ...


def run_plan(plan: JobPlan, out: Path, pool: Pool, on_done: Callable[[PlannedJob, Any], None] = lambda j, r: None,
             poll_seconds: float = POLL_SECONDS) -> dict[str, Any]:
    by_id = plan.by_id()
    results: dict[str, Any] = {}
    running: dict[Hashable, str] = {}
    while True:
        started = set(running.values()) | set(results)
        for job in jobs.ready(plan, out, started):
            if len(running) >= pool.capacity:
                break
            running[pool.submit(job)] = job.id
        if not running:
            left = [j for j in plan.jobs if j.id not in results and j.id not in jobs.finished(plan, out)]
            if left:
                raise ConfigError(f"{Path(out) / 'plan.json'}: job {left[0].id} waits for {left[0].needs}, which "
                                  f"no remaining job writes (did {', '.join(left[0].after) or 'its source'} finish "
                                  "without that export?)")
            return results
        for handle, result in pool.wait(list(running), poll_seconds):
            job = by_id[running.pop(handle)]
            results[job.id] = result
            on_done(job, result)
