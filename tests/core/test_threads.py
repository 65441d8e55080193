"""Row-parallel passes: every row covered once, the same bytes on 1 or 2 threads, a forked child still works."""

import os
import signal
import time

import numpy as np

from splitlm.core import threads
from splitlm.curate.cluster.rule import evaluate


def test_spans_cover_every_row_once():
    seen = np.zeros(10_001, np.int64)

    def mark(lo, hi):
        seen[lo:hi] += 1

    threads.set_threads(3)
    try:
        threads.over_spans(mark, len(seen), 100)
    finally:
        threads.set_threads(None)
    assert (seen == 1).all()


def test_the_rule_gives_the_same_bytes_on_one_and_two_threads():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((70_000, 16)).astype(np.float32)
    beta = rng.standard_normal(16).astype(np.float32) * 0.1
    out = {}
    for t in (1, 2):
        threads.set_threads(t)
        r = evaluate(scores, beta)
        out[t] = (r.labels.tobytes(), r.second.tobytes(), r.top.tobytes(), r.gap.tobytes(), r.dual)
    threads.set_threads(None)
    assert out[1] == out[2]


def test_a_forked_child_runs_parallel_passes():
    threads.set_threads(2)
    try:
        threads.over_spans(lambda lo, hi: None, 1000, 1)  # the parent's pool exists now
        time.sleep(0.2)  # its threads idle, as a long-lived process's are
        pid = os.fork()
        if pid == 0:  # the child has none of the parent's pool threads
            total = np.zeros(1)

            def add(lo, hi):
                total[0] += hi - lo

            threads.over_spans(add, 1000, 1)
            os._exit(0 if total[0] == 1000 else 1)
        for _ in range(600):  # 60 s, then the child is taken as hung
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung on the parent's thread pool")
        assert os.WEXITSTATUS(status) == 0
    finally:
        threads.set_threads(None)
