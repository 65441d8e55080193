"""Split training: one pretraining run on the mixture, K branches from each split point.

The pretraining run exports weights at every split point, at each split run's D + K * D' (its
baseline there) and every `--checkpoint-every` tokens, and continues to D_T: it is also the
all-pretraining baseline. The jobs are written to TRAIN/plan.json (`jobs`) and run by an executor
(`executors`): locally, one after the other or in `parallel` processes, or as Ray tasks; a branch
starts as soon as its export exists. `add_split` branches a finished run at one more point.
Budgets and checks are `budget`'s. Layout of TRAIN (`--out`): `split.json` (the config),
`plan.json`, `pretrain/` (a job folder, see `runner`), `branches/split-<tokens>/cluster-KK/` (job
folders), `losses.csv` + `losses.parquet`, `router/` (the run's router, copied by `copy_router` so that
TRAIN is self-contained: `splitlm.train.split_model.SplitModel` never needs the curation run).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import fields, replace
from functools import partial
from pathlib import Path

from splitlm.core.atomic import atomic_write_text, fresh_folder, publish_folder
from splitlm.core.errors import ConfigError, SchemaError
from splitlm.core.hashing import canonical, sha256_file
from splitlm.core.ray_session import RaySession
from splitlm.curate.routing.files import PREFIXES
from splitlm.schemas.jobs import JobPlan, PlannedJob
from splitlm.schemas.layout import ROUTER_DIR, ROUTER_RECORD, RunLayout, TrainLayout
from splitlm.schemas.router import RouterSpec
from splitlm.schemas.run import RunSummary
from splitlm.train import checkpoint, jobs, runner
from splitlm.train.budget import Budget, prepare
from splitlm.train.config import Execution, SplitConfig
from splitlm.train.evaluate import write_losses
from splitlm.train.executors import runners
from splitlm.train.executors.local import local_pool, threads_per_job
from splitlm.train.executors.ray import RayPool
from splitlm.train.executors.schedule import run_plan


def copy_router(run: Path, out: Path) -> Path | None:
    """TRAIN/router/: RUN's router as a small RUN of its own, or None when RUN has no router.

    `clusters/router.json` + `router.safetensors` (the spec, whose embedder entry names the model
    and its weights sha256, and the tensors), `routing/` when RUN has a finished routing stage
    (manifest included; not its training prefixes' embeddings, which only `curate inspect` reads), the tokenizer file when the run names one by path, and
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
        shutil.copytree(routing, tmp / "routing", ignore=shutil.ignore_patterns(PREFIXES))
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


def runner_for(out: Path, ex: Execution):
    """What runs one planned job under `ex`: the Trainer in the executor's process, or a DDP launcher."""
    if ex.processes > 1:
        return partial(runners.multi_process, train=out, procs=ex.processes, threads=ex.threads or 1)
    threads = threads_per_job(ex.parallel, ex.threads) if ex.engine == "local" else ex.threads or 1
    return partial(runners.in_process, train=out, threads=threads)


def _report_in(train: Path, job: PlannedJob, result) -> None:
    _report(jobs.folder(job, train), job, result)


def _report(folder: Path, job: PlannedJob, result) -> None:
    rows = runner.read_rows(folder / "losses.jsonl")
    last = [r for r in rows if r["step"] == max((r["step"] for r in rows), default=-1)]
    losses = " ".join(f"c{r['eval_cluster']:02d} {r['eval_loss']:.3f}" for r in last)
    resumed = f", resumed from step {result.resumed_from}" if result.resumed_from else ""
    print(f"finished {job.id}: {result.steps} steps{resumed}; val loss {losses}", flush=True)


def execute(plan: JobPlan, out: Path, ex: Execution) -> dict:
    """Run every unfinished job of `plan` on the engine `ex` names; results by job id."""
    run = runner_for(out, ex)
    if ex.engine == "local":
        with local_pool(run, ex.parallel) as pool:
            return run_plan(plan, out, pool, partial(_report_in, out))
    with RaySession(ex.ray_address, log_to_driver=True):
        pool = RayPool(run, out, cpus_per_job=(ex.threads or 1) * ex.processes, gpus_per_job=ex.gpus_per_job)
        return run_plan(plan, out, pool, partial(_report_in, out))


def prune_exports(out: Path, plan: JobPlan, k: int, keep: str) -> list[Path]:
    """Delete the pretraining exports `keep` does not keep; the removed folders.

    `all` keeps every one; `split-points` the split points; `last` none of those. The exports at each
    split run's D + K * D' always stay: they are the baselines routed evaluation compares against.
    """
    if keep == "all":
        return []
    budget_steps = [(s, s + k * b) for s, b in zip(plan.split_steps, _branch_steps(plan))]
    kept = {t for _, t in budget_steps} | ({s for s, _ in budget_steps} if keep == "split-points" else set())
    removed = []
    for folder in sorted((out / "pretrain" / "exports").glob("tokens-*")):
        if int(folder.name.split("-")[1]) // plan.tokens_per_step not in kept:
            shutil.rmtree(folder)
            removed.append(folder)
    return removed


def _branch_steps(plan: JobPlan) -> list[int]:
    steps = {j.job["split_at"] // plan.tokens_per_step: j.steps for j in plan.jobs if j.kind == "branch"}
    return [steps[s] for s in plan.split_steps]


def split(cfg: SplitConfig, out: Path, clusters: tuple[int, ...] | None = None, ex: Execution | None = None
          ) -> tuple[Budget, Path]:
    """Plan, then run every job (pretraining, the baseline, and every branch); returns (budget, losses table).

    `budget.prepare` checks everything first, so a refused run writes nothing that would block the
    corrected one; then TRAIN/split.json records the config (a rerun must match it) and TRAIN/plan.json
    grows by this call's jobs.
    """
    ex = ex or Execution()
    budget, pretrain, branches = prepare(cfg, out, clusters, ex.parallel, ex.threads)
    if not TrainLayout(out).config.exists():  # else prepare found it holds this very config
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(TrainLayout(out).config, json.dumps(canonical(cfg), indent=2) + "\n")
    if copy_router(cfg.run, out) is None:
        print(f"note: {cfg.run} has no router yet (clusters/router.json); TRAIN gets none", flush=True)
    k = len(pretrain.train_clusters)
    print(budget.describe(k, cfg.total_tokens), flush=True)
    plan = jobs.write(out, jobs.build(budget, pretrain, branches, out))
    execute(plan, out, ex)
    prune_exports(out, plan, k, ex.keep_checkpoints)
    return budget, write_losses(out)


def read_config(out: Path) -> SplitConfig:
    """The SplitConfig TRAIN/split.json holds."""
    path = TrainLayout(out).config
    if not path.exists():
        raise ConfigError(f"{out}: no split.json; `--add-split-at` adds to a finished `train split --out {out}`")
    raw = json.loads(path.read_text())
    names = {f.name for f in fields(SplitConfig)}
    values = {key: value for key, value in raw.items() if key in names}
    return SplitConfig(**{**values, "run": Path(values["run"]), "split_at": tuple(values["split_at"])})


def checkpoint_for(out: Path, tokens: int, exact: bool) -> int:
    """The pretraining export a split at `tokens` branches from: that one, or the nearest (refused if `exact`)."""
    exports = sorted(int(p.name.split("-")[1]) for p in (out / "pretrain" / "exports").glob("tokens-*")
                     if (p / checkpoint.WEIGHTS).exists())
    if tokens in exports:
        return tokens
    if not exports:
        raise ConfigError(f"{out}/pretrain/exports: no pretraining checkpoints to branch from")
    nearest = min(exports, key=lambda t: (abs(t - tokens), t))
    if exact:
        raise ConfigError(f"--add-split-at {tokens:,}: no pretraining checkpoint there (--exact); the nearest is "
                          f"at {nearest:,} tokens")
    print(f"note: no pretraining checkpoint at {tokens:,} tokens; branching from the nearest, at {nearest:,}",
          flush=True)
    return nearest


def add_split(out: Path, tokens: int, exact: bool = False, clusters: tuple[int, ...] | None = None,
              ex: Execution | None = None) -> tuple[Budget, Path]:
    """Branch an existing run at one more split point, from its pretraining checkpoints (pretraining is not rerun)."""
    ex = ex or Execution()
    cfg = read_config(out)
    if not (out / "pretrain" / "done.json").exists():
        raise ConfigError(f"{out}/pretrain: pretraining has not finished; rerun `train split` first")
    at = checkpoint_for(out, tokens, exact)
    grown = replace(cfg, split_at=tuple(sorted({*cfg.split_at, at})))
    prepare(grown, out, clusters, ex.parallel, ex.threads, check_existing=False)  # refused before anything changes
    atomic_write_text(TrainLayout(out).config, json.dumps(canonical(grown), indent=2) + "\n")
    return split(grown, out, clusters, ex)
