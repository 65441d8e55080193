"""The local executor: jobs in this process (`parallel` 1), or in `parallel` spawned processes that
share the machine's cores (each job then gets cores / parallel torch threads unless `threads` says)."""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from multiprocessing import get_context
from typing import Any, Self

from splitlm.schemas.jobs import PlannedJob
from splitlm.train import jobs
from splitlm.train.config import TrainJob


class InProcessPool:
    """One job at a time, run to its end inside `submit`."""

    capacity = 1

    def __init__(self, train: Callable[[TrainJob], Any], threads: int = 0):
        self.train, self.threads = train, threads
        self._results: dict[int, Any] = {}

    def submit(self, job: PlannedJob) -> Hashable:
        handle = len(self._results)
        self._results[handle] = self.train(replace(jobs.train_job(job), threads=self.threads))
        return handle

    def wait(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, Any]]:
        return [(h, self._results.pop(h)) for h in handles]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        pass


class ProcessPool:
    """Up to `parallel` jobs at once, each in its own spawned process."""

    def __init__(self, train: Callable[[TrainJob], Any], parallel: int, threads: int = 0):
        self.train, self.capacity = train, parallel
        self.threads = threads or max(1, len(os.sched_getaffinity(0)) // parallel)
        self._pool = ProcessPoolExecutor(max_workers=parallel, mp_context=get_context("spawn"))

    def submit(self, job: PlannedJob) -> Hashable:
        return self._pool.submit(self.train, replace(jobs.train_job(job), threads=self.threads))

    def wait(self, handles: list[Future], timeout: float) -> list[tuple[Hashable, Any]]:
        finished, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return [(f, f.result()) for f in handles if f in finished]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)


def local_pool(train: Callable[[TrainJob], Any], parallel: int = 1, threads: int = 0):
    return InProcessPool(train, threads) if parallel <= 1 else ProcessPool(train, parallel, threads)
