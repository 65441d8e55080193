"""The local executor: jobs in this process (`parallel` 1), or in `parallel` spawned processes that
share the machine's cores. `run` is what runs one planned job (`executors.runners`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any, Self

from splitlm.schemas.jobs import PlannedJob


class InProcessPool:
    """One job at a time, run to its end inside `submit`."""

    capacity = 1

    def __init__(self, run: Callable[[PlannedJob], Any]):
        self.run = run
        self._results: dict[int, Any] = {}
        self._submitted = 0

    def submit(self, job: PlannedJob) -> Hashable:
        handle = self._submitted
        self._submitted += 1
        self._results[handle] = self.run(job)
        return handle

    def wait(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, Any]]:
        return [(h, self._results.pop(h)) for h in handles]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        pass


class ProcessPool:
    """Up to `parallel` jobs at once, each in its own spawned process."""

    def __init__(self, run: Callable[[PlannedJob], Any], parallel: int):
        self.run, self.capacity = run, parallel
        self._pool = ProcessPoolExecutor(max_workers=parallel, mp_context=get_context("spawn"))

    def submit(self, job: PlannedJob) -> Hashable:
        return self._pool.submit(self.run, job)

    def wait(self, handles: list[Future], timeout: float) -> list[tuple[Hashable, Any]]:
        finished, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return [(f, f.result()) for f in handles if f in finished]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)


def threads_per_job(parallel: int, threads: int = 0) -> int:
    """`threads`, or the machine's cores shared by `parallel` jobs (0 for one job: torch's default)."""
    return threads or (0 if parallel <= 1 else max(1, len(os.sched_getaffinity(0)) // parallel))


def local_pool(run: Callable[[PlannedJob], Any], parallel: int = 1):
    return InProcessPool(run) if parallel <= 1 else ProcessPool(run, parallel)
