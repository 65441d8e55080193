"""The phonebook sweep: per alpha, ONE pretraining run on both clusters serves every split fraction.

Steps are counted as in the paper's Sec. 3.1: a total budget of T steps is D + K x D' with K = 2,
so at pretraining fraction f the pretraining run has trained round(f x T) steps when it is split,
and each of the two branches then trains floor((T - round(f x T)) / 2) steps on its own cluster
(the rounding of `budget.plan_budget`, the rule `train split` uses). f = 1.0 is the pretraining
run itself at T steps, scored on both clusters; f = 0 branches start from the pretraining run's
export at step 0 (its initial weights), as `train split`'s do.

Training goes through `runner.train`, the same Trainer-based runner as `train split`, with the
same warmup rule: the pretraining run warms up for `warmup_steps`, a branch from step 0 for
`budget.STEP0_WARMUP_SHARE` of that, a branch from a pretrained checkpoint not at all (constant LR).

Each alpha's jobs run as a `train split` job plan (`jobs.build`, `executors.schedule.run_plan`): a
branch starts as soon as the pretraining export it needs exists, so branches train while the
pretraining run goes on.

Layout of DIR: `phonebook.json` (the config; a rerun must match it), `alpha-<a>/run/` (the facts as
a curated run, `facts.write_run`), `alpha-<a>/train/` (the `train split` layout: `plan.json`,
`pretrain/`, `branches/split-<tokens>/cluster-KK/`), `phonebook.csv` and `phonebook.png`. Every job
that finished (its done.json) is reused on rerun, and a killed job resumes from its last checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

from splitlm.core.atomic import atomic_write_text
from splitlm.core.errors import ConfigError
from splitlm.schemas.layout import TrainLayout
from splitlm.train import flags, jobs
from splitlm.train.budget import STEP0_WARMUP_SHARE, Budget, plan_budget
from splitlm.train.config import TrainJob, export_dir
from splitlm.train.executors import runners
from splitlm.train.executors.local import local_pool
from splitlm.train.executors.schedule import run_plan
from splitlm.train.phonebook import facts as facts_mod
from splitlm.train.phonebook import score
from splitlm.train.phonebook.config import PhonebookConfig


def alpha_dir(out: Path, alpha: float) -> Path:
    return out / f"alpha-{alpha:g}"


def budget(cfg: PhonebookConfig) -> Budget:
    per_step = cfg.batch_size * (facts_mod.WIDTH - 1)
    return plan_budget(cfg.total_steps * per_step, cfg.split_steps_tokens(per_step), facts_mod.K, per_step)


def plan(cfg: PhonebookConfig, out: Path, alpha: float) -> tuple[TrainJob, dict[float, list[TrainJob]]]:
    """(the pretraining job, the two branch jobs of each fraction below 1) of one alpha."""
    run, train = alpha_dir(out, alpha) / "run", alpha_dir(out, alpha) / "train"
    fractions = [f for f in cfg.fractions if f < 1]
    budget_ = budget(cfg)
    per_step = budget_.tokens_per_step
    k = tuple(range(facts_mod.K))
    pretrain = TrainJob(
        name=f"alpha {alpha:g} pretrain", out=TrainLayout(train).pretrain, run=run, size=cfg.size, arch="gpt2",
        init=None, train_clusters=k, eval_clusters=k, steps=budget_.total_steps, warmup_steps=cfg.warmup_steps,
        batch_size=cfg.batch_size, eval_every=budget_.total_steps, save_every=max(1, budget_.total_steps // 4),
        export_at=budget_.split_steps, seed=cfg.seed, eval_windows=256, precision=cfg.precision, verbose=False,
    )  # fmt: skip
    branches = {}
    for f, s, b in zip(fractions, budget_.split_steps, budget_.branch_steps):
        tokens = s * per_step
        branches[f] = [replace(
            pretrain, name=f"alpha {alpha:g} f {f:g} c{c}", out=TrainLayout(train).branch(tokens, c, facts_mod.K),
            init=export_dir(pretrain.out, tokens), train_clusters=(c,), eval_clusters=(c,), steps=b,
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


def sweep(cfg: PhonebookConfig, out: Path, parallel: int = 1, threads: int = 1) -> list[dict]:
    """Write the facts, train every job (reusing finished ones), score; returns the CSV rows."""
    check_config(cfg, out)
    plans = {}
    for alpha in cfg.alphas:
        facts_mod.write_run(
            alpha_dir(out, alpha) / "run", facts_mod.make_facts(cfg.facts, alpha, cfg.seed), cfg.seed
        )
        plans[alpha] = plan(cfg, out, alpha)
    for alpha, (pretrain, branches) in plans.items():
        train = alpha_dir(out, alpha) / "train"
        # The plan lists branches by split point, so the longest (step-0) ones start first, beside pretraining.
        planned = jobs.build(budget(cfg), pretrain, [j for js in branches.values() for j in js], train)
        plan_ = jobs.write(train, planned)
        with local_pool(partial(runners.in_process, train=train, threads=threads), parallel) as pool:
            run_plan(plan_, train, pool)
    return score.score_sweep(cfg, {a: (alpha_dir(out, a) / "run", *p) for a, p in plans.items()})
