"""Row-parallel numpy passes: a row range cut into one contiguous span per thread.

NumPy releases the GIL inside ufuncs, `argmax` and fancy indexing on numeric arrays, so a pass over
the rows of a score matrix (the balanced rule's argmax, its top-2) runs on every core when its rows
are cut into spans, each written to its own slice of preallocated outputs. Each row's result depends
on that row alone, so the outputs are the same bytes on any number of threads.

`threads()` is the number of cores this process may use (its CPU affinity), or what `set_threads`
set (`benchmarks/kmeans.py --threads 1` compares single-thread work).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

_limit: int | None = None


def set_threads(n: int | None) -> None:
    """Use at most n threads for row-parallel passes (None: every core of this process's affinity)."""
    global _limit
    _limit = None if n is None else max(1, int(n))


def threads() -> int:
    return _limit or len(os.sched_getaffinity(0))


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="splitlm-rows")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of the parent's threads


def over_spans(fn: Callable[[int, int], None], n: int, min_rows: int) -> None:
    """fn(lo, hi) over contiguous spans covering [0, n): one per thread, each at least `min_rows` rows
    (a single call in this thread when n is small or one thread is allowed). Exceptions propagate."""
    spans = min(threads(), max(1, n // max(min_rows, 1)))
    if spans <= 1:
        fn(0, n)
        return
    cuts = [n * i // spans for i in range(spans + 1)]
    futures = [_pool(spans).submit(fn, lo, hi) for lo, hi in zip(cuts, cuts[1:])]
    for f in futures:
        f.result()
