"""Split training: one pretraining run on the mixture, K branches from each split point.

The pretraining run exports weights at every split point and continues to D_T: it is also the
all-pretraining baseline. Branches are independent jobs, run one after the other or in `parallel`
local processes. Budgets and checks are `budget`'s. Layout of TRAIN (`--out`): `split.json` (the
config), `pretrain/` (a job folder, see `runner`), `branches/split-<tokens>/cluster-KK/` (job
folders), `losses.csv` + `losses.parquet`.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

from splitlm.core.atomic import atomic_write_text
from splitlm.core.hashing import canonical
from splitlm.schemas.layout import TrainLayout
from splitlm.train import runner
from splitlm.train.budget import Budget, prepare
from splitlm.train.config import SplitConfig, TrainJob
from splitlm.train.evaluate import write_losses


def run_jobs(jobs: list[TrainJob], parallel: int) -> list[runner.JobResult]:
    """Independent jobs, in order or over `parallel` spawned processes sharing the cores."""
    if parallel <= 1 or len(jobs) <= 1:
        return [runner.train(job) for job in jobs]
    cores = len(os.sched_getaffinity(0))
    jobs = [replace(j, threads=j.threads or max(1, cores // parallel)) for j in jobs]
    with ProcessPoolExecutor(max_workers=parallel, mp_context=get_context("spawn")) as pool:
        return list(pool.map(runner.train, jobs))


def split(
    cfg: SplitConfig, out: Path, clusters: tuple[int, ...] | None = None, parallel: int = 1, threads: int = 0
) -> tuple[Budget, Path]:
    """Pretrain (the baseline), then every branch; returns (budget, losses table path).

    `budget.prepare` checks everything first, so a refused run writes nothing that would block the
    corrected one; then TRAIN/split.json records the config (a rerun must match it).
    """
    budget, pretrain, branches = prepare(cfg, out, clusters, parallel, threads)
    if not TrainLayout(out).config.exists():  # else prepare found it holds this very config
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(TrainLayout(out).config, json.dumps(canonical(cfg), indent=2) + "\n")
    print(budget.describe(len(pretrain.train_clusters)), flush=True)
    runner.train(replace(pretrain, threads=threads))
    run_jobs([replace(b, threads=threads) for b in branches], parallel)
    return budget, write_losses(out)
