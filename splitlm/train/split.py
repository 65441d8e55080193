"""Split training: one pretraining run on the mixture, K branches from each split point.

The pretraining run exports weights at every split point and continues to D_T: it is also the
all-pretraining baseline. Branches are independent jobs, run one after the other or in `parallel`
local processes. Budgets and checks are `budget`'s. Layout of TRAIN (`--out`): `split.json` (the
config), `pretrain/` (a job folder, see `runner`), `branches/split-<tokens>/cluster-KK/` (job
folders), `losses.csv` + `losses.parquet`, `router/` (the run's router, copied by `copy_router` so that
TRAIN is self-contained: `splitlm.train.split_model.SplitModel` never needs the curation run).
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

from splitlm.core.atomic import atomic_write_text, fresh_folder, publish_folder
from splitlm.core.errors import SchemaError
from splitlm.core.hashing import canonical, sha256_file
from splitlm.schemas.layout import RunLayout, TrainLayout
from splitlm.schemas.router import RouterSpec
from splitlm.schemas.run import RunSummary
from splitlm.train import runner
from splitlm.train.budget import Budget, prepare
from splitlm.train.config import SplitConfig, TrainJob
from splitlm.train.evaluate import write_losses

ROUTER_DIR = "router"
ROUTER_RECORD = "copied.json"


def copy_router(run: Path, out: Path) -> Path | None:
    """TRAIN/router/: RUN's router as a small RUN of its own, or None when RUN has no router.

    `clusters/router.json` + `router.safetensors` (the spec, whose embedder entry names the model
    and its weights sha256, and the tensors), `routing/` when RUN has a finished routing stage
    (copied whole, manifest included), the tokenizer file when the run names one by path, and
    `copied.json`: the source run and the sha256 of every copied file, checked on load. The folder
    is built beside its target and renamed into place.
    """
    run_layout = RunLayout(run)
    if not run_layout.router_spec.exists() or not run_layout.router_tensors.exists():
        return None
    target = out / ROUTER_DIR
    tmp = fresh_folder(out / f".{ROUTER_DIR}.partial")
    (tmp / "clusters").mkdir()
    for src in (run_layout.router_spec, run_layout.router_tensors):
        shutil.copyfile(src, tmp / "clusters" / src.name)
    routing = run_layout.stage("routing")
    if (routing / "manifest.json").exists():
        shutil.copytree(routing, tmp / "routing")
    spec = RouterSpec.read(run_layout.router_spec)
    summary = RunSummary.read(run)
    if spec.tokenizer != summary.tokenizer:
        raise SchemaError(f"{run_layout.router_spec}: tokenizer {spec.tokenizer!r}, but {run_layout.manifest} says "
                          f"{summary.tokenizer!r}; re-curate the run")
    tokenizer = spec.tokenizer
    if Path(tokenizer).is_file() or Path(tokenizer).is_dir():
        source = Path(tokenizer) / "tokenizer.json" if Path(tokenizer).is_dir() else Path(tokenizer)
        shutil.copyfile(source, tmp / "tokenizer.json")
        tokenizer = "tokenizer.json"
    files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    record = {"run": str(run), "k": summary.k, "tokenizer": tokenizer, "tokenizer_sha256": summary.tokenizer_sha256,
              "files": files}
    atomic_write_text(tmp / ROUTER_RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")
    publish_folder(tmp, target)
    return target


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
    if copy_router(cfg.run, out) is None:
        print(f"note: {cfg.run} has no router yet (clusters/router.json); TRAIN gets none", flush=True)
    print(budget.describe(len(pretrain.train_clusters)), flush=True)
    runner.train(replace(pretrain, threads=threads))
    run_jobs([replace(b, threads=threads) for b in branches], parallel)
    return budget, write_losses(out)
