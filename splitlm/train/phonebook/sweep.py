"""The phonebook sweep: per alpha, ONE pretraining run on both clusters serves every split fraction.

Steps are counted as in the paper's Sec. 3.1: a total budget of T steps is D + K x D' with K = 2,
so at pretraining fraction f the pretraining run has trained round(f x T) steps when it is split,
and each of the two branches then trains floor((T - round(f x T)) / 2) steps on its own cluster
(the rounding of `budget.plan_budget`, the rule `train split` uses). f = 1.0 is the pretraining
run itself at T steps, scored on both clusters; f = 0 branches start from the initial weights
(built from the seed as the pretraining run's are, so they need not wait for it).

Training goes through `runner.train`, the same Trainer-based runner as `train split`, with the
same warmup rule: the pretraining run warms up for `warmup_steps`, a branch from step 0 for
`budget.STEP0_WARMUP_SHARE` of that, a branch from a pretrained checkpoint not at all (constant LR).

Layout of DIR: `phonebook.json` (the config; a rerun must match it), `alpha-<a>/run/` (the facts as
a curated run, `facts.write_run`), `alpha-<a>/train/` (the `train split` layout: `pretrain/`,
`branches/split-<tokens>/cluster-KK/`), `phonebook.csv` and `phonebook.png`. Every job that
finished (its done.json) is reused on rerun, and a killed job resumes from its last checkpoint.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

from splitlm.core.atomic import atomic_write_text
from splitlm.core.errors import ConfigError
from splitlm.schemas.layout import TrainLayout
from splitlm.train import flags, runner
from splitlm.train.budget import STEP0_WARMUP_SHARE, plan_budget
from splitlm.train.config import TrainJob, export_dir
from splitlm.train.phonebook import facts as facts_mod
from splitlm.train.phonebook import score
from splitlm.train.phonebook.config import PhonebookConfig


def alpha_dir(out: Path, alpha: float) -> Path:
    return out / f"alpha-{alpha:g}"


def plan(cfg: PhonebookConfig, out: Path, alpha: float) -> tuple[TrainJob, dict[float, list[TrainJob]]]:
    """(the pretraining job, the two branch jobs of each fraction below 1) of one alpha."""
    run, train = alpha_dir(out, alpha) / "run", alpha_dir(out, alpha) / "train"
    per_step = cfg.batch_size * (facts_mod.WIDTH - 1)
    fractions = [f for f in cfg.fractions if f < 1]
    budget = plan_budget(cfg.total_steps * per_step, cfg.split_steps_tokens(per_step), facts_mod.K, per_step)
    k = tuple(range(facts_mod.K))
    pretrain = TrainJob(
        name=f"alpha {alpha:g} pretrain", out=TrainLayout(train).pretrain, run=run, size=cfg.size, arch="gpt2",
        init=None, train_clusters=k, eval_clusters=k, steps=budget.total_steps, warmup_steps=cfg.warmup_steps,
        batch_size=cfg.batch_size, eval_every=budget.total_steps, save_every=max(1, budget.total_steps // 4),
        export_at=budget.split_steps, seed=cfg.seed, eval_windows=256, precision=cfg.precision, verbose=False,
    )  # fmt: skip
    branches = {}
    for f, s, b in zip(fractions, budget.split_steps, budget.branch_steps):
        tokens = s * per_step
        branches[f] = [replace(
            pretrain, name=f"alpha {alpha:g} f {f:g} c{c}", out=TrainLayout(train).branch(tokens, c, facts_mod.K),
            init=export_dir(pretrain.out, tokens) if s else None, train_clusters=(c,), eval_clusters=(c,), steps=b,
            warmup_steps=round(STEP0_WARMUP_SHARE * cfg.warmup_steps) if s == 0 else 0, eval_every=b,
            save_every=max(1, b // 4), export_at=(), branch_cluster=c, split_at=tokens,
        ) for c in k]  # fmt: skip
    return pretrain, branches


def check_config(cfg: PhonebookConfig, out: Path) -> None:
    """Refuse a DIR that holds a sweep with another config; record this one in a new DIR."""
    flags.out_folder(out)
    path, want = out / "phonebook.json", json.loads(json.dumps(asdict(cfg)))
    if path.exists():
        have = json.loads(path.read_text())
        diff = sorted(key for key in want.keys() | have.keys() if want.get(key) != have.get(key))
        if diff:
            raise ConfigError(
                f"{path}: DIR holds a sweep with other {', '.join(diff)}; rerun with its flags or a new --out"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(want, indent=2, sort_keys=True) + "\n")


def train_job(job: TrainJob) -> runner.JobResult:
    """`runner.train` in a spawned worker process."""
    return runner.train(job)


def run_jobs(jobs: list[TrainJob], parallel: int) -> list[runner.JobResult]:
    """Independent jobs, in order or over `parallel` spawned processes (as `split.run_jobs`)."""
    if parallel <= 1 or len(jobs) <= 1:
        return [runner.train(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=parallel, mp_context=get_context("spawn")) as pool:
        return list(pool.map(train_job, jobs))


def sweep(cfg: PhonebookConfig, out: Path, parallel: int = 1, threads: int = 1) -> list[dict]:
    """Write the facts, train every job (reusing finished ones), score; returns the CSV rows."""
    check_config(cfg, out)
    plans = {}
    for alpha in cfg.alphas:
        facts_mod.write_run(
            alpha_dir(out, alpha) / "run", facts_mod.make_facts(cfg.facts, alpha, cfg.seed), cfg.seed
        )
        plans[alpha] = plan(cfg, out, alpha)
    # First the jobs that need no export: the pretraining runs and the branches from step 0 (T/2
    # steps each, so with 2 processes one pretraining run and its two step-0 branches take the same
    # time); then every other branch, longest first.
    jobs = [p for p, _ in plans.values()] + [j for _, b in plans.values() for js in b.values() for j in js]
    # Finished jobs (their done.json) are not handed to a worker: a rerun of a finished sweep only scores.
    jobs = [replace(j, threads=threads) for j in jobs if not (j.out / "done.json").exists()]
    first = [j for j in jobs if j.init is None]
    run_jobs(sorted(first, key=lambda j: -j.steps), parallel)
    run_jobs(sorted((j for j in jobs if j.init is not None), key=lambda j: -j.steps), parallel)
    return score.score_sweep(cfg, {a: (alpha_dir(out, a) / "run", *p) for a, p in plans.items()})
