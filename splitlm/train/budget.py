"""The plan of a split run, and every check before one starts: budgets in steps, the jobs, the shards.

Budgets are tokens: D (pretraining before the split, = the split point t_s), D' (each branch) and
D_T = D + K * D'. One step trains batch x seq_len tokens, so budgets become whole steps: the
pretraining run takes floor(D_T / step) steps, a split point rounds to the nearest step and each
branch takes floor((steps(D_T) - steps(D)) / K) steps. Every figure reported is the realised one
(steps x tokens per step); when rounding moves a total, `Budget.note` says so.

`prepare` refuses whatever can be refused before TRAIN is touched: flags, budget, --out, the run's
shards (every one opens and matches its header and index; every cluster has validation windows),
a TRAIN that holds another run. It needs numpy and the shard files, not the training libraries,
so `train split` calls it before loading them.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path

from splitlm.core.errors import ConfigError
from splitlm.core.hashing import canonical
from splitlm.schemas.layout import TrainLayout, cluster_number
from splitlm.train import data as data_mod
from splitlm.train import flags
from splitlm.train.config import SplitConfig, TrainJob, export_dir

# Paper App. A: 10,000 warmup steps for pretraining, 3,000 when a branch starts from step 0.
STEP0_WARMUP_SHARE = 0.3


@dataclass(frozen=True)
class Budget:
    """Token budgets converted to steps for a run with K clusters."""

    tokens_per_step: int
    total_steps: int
    """Steps of the pretraining run (the baseline reaches D_T)."""
    split_steps: tuple[int, ...]
    branch_steps: tuple[int, ...]
    """Steps of every branch from the matching split point."""
    note: str
    """Empty, or what rounding to whole steps changed."""

    def tokens(self, steps: int) -> int:
        return steps * self.tokens_per_step

    def split_totals(self, k: int) -> tuple[int, ...]:
        """Steps of D + K * D' for every split point: the split run's realised D_T, where its baseline is read."""
        return tuple(s + k * b for s, b in zip(self.split_steps, self.branch_steps))

    def describe(self, k: int, requested: int | None = None) -> str:
        """One line per split point with its own D_T, and how it relates to the requested D_T."""
        total = self.tokens(self.total_steps)
        want = f" (requested {requested:,})" if requested is not None and requested != total else ""
        lines = [f"plan: pretraining to D_T {total:,} tokens{want}: {self.total_steps} steps of {self.tokens_per_step:,}"]
        for s, b, t in zip(self.split_steps, self.branch_steps, self.split_totals(k)):
            short = "" if t == self.total_steps else (f", {self.tokens(self.total_steps - t):,} short of D_T by "
                                                      f"rounding; the baseline is read there too")
            lines.append(f"  split at {self.tokens(s):,}: D {self.tokens(s):,} + {k} x D' {self.tokens(b):,} = "
                         f"D_T {self.tokens(t):,}{short}")
        return "\n".join(lines)


def plan_budget(total_tokens: int, split_at: tuple[int, ...], k: int, tokens_per_step: int) -> Budget:
    total = total_tokens // tokens_per_step
    splits = tuple(round(t / tokens_per_step) for t in split_at)
    if total < 1:
        raise ConfigError(f"--total-tokens {total_tokens}: less than one step of {tokens_per_step} tokens")
    for t, s in zip(split_at, splits):
        if (total - s) // k < 1:
            raise ConfigError(f"--split-at {t}: leaves under one step per branch for K={k} within D_T={total_tokens}")
    branches = tuple((total - s) // k for s in splits)
    moved = [
        f"t_s {t:,} -> {s * tokens_per_step:,} (D_T {(s + k * b) * tokens_per_step:,})"
        for t, s, b in zip(split_at, splits, branches)
        if s * tokens_per_step != t or (s + k * b) * tokens_per_step != total_tokens
    ]
    note = f"rounded to whole steps of {tokens_per_step:,} tokens: " + "; ".join(moved) if moved else ""
    return Budget(tokens_per_step, total, splits, branches, note)


def branch_dir(out: Path, split_tokens: int, cluster: int, k: int) -> Path:
    return TrainLayout(out).branch(split_tokens, cluster, k)


def plan_jobs(cfg: SplitConfig, out: Path, clusters: tuple[int, ...] | None = None):
    """(budget, pretraining job, branch jobs) for `clusters` (None: all K)."""
    info = data_mod.read_run(cfg.run)
    budget = plan_budget(cfg.total_tokens, cfg.split_at, info.k, cfg.batch_size * info.seq_len)
    steps = lambda tokens: max(1, round(tokens / budget.tokens_per_step))  # noqa: E731
    eval_every = steps(cfg.eval_every or cfg.total_tokens / 20)
    warmup_tokens = 0.01 * cfg.total_tokens if cfg.warmup_tokens < 0 else cfg.warmup_tokens
    warmup = round(warmup_tokens / budget.tokens_per_step)
    every = steps(cfg.checkpoint_every or cfg.total_tokens / 20)
    totals = budget.split_totals(info.k)
    checkpoints = range(every, budget.total_steps, every)
    pretrain = TrainJob(
        name="pretrain", out=out / "pretrain", run=cfg.run, size=cfg.size, arch=cfg.arch, init=None,
        train_clusters=tuple(range(info.k)), eval_clusters=tuple(range(info.k)), steps=budget.total_steps,
        warmup_steps=warmup, batch_size=cfg.batch_size, eval_every=eval_every, save_every=eval_every,
        export_at=tuple(sorted({*budget.split_steps, *totals, *checkpoints} - {budget.total_steps})),
        eval_at=tuple(sorted(set(totals) - {budget.total_steps})),
        seed=cfg.seed, eval_windows=cfg.eval_windows, precision=cfg.precision,
    )  # fmt: skip
    bad = [c for c in clusters or () if not 0 <= c < info.k]
    if bad:
        raise ConfigError(f"--clusters {bad}: the run has clusters 0..{info.k - 1}")
    branches = []
    for s, b in sorted(zip(budget.split_steps, budget.branch_steps)):
        for k in clusters if clusters is not None else range(info.k):
            tokens = budget.tokens(s)
            branches.append(replace(
                pretrain, name=f"split {tokens:,} c{cluster_number(k, info.k)}", out=branch_dir(out, tokens, k, info.k),
                init=export_dir(pretrain.out, tokens), train_clusters=(k,), eval_clusters=(k,), steps=b,
                warmup_steps=round(STEP0_WARMUP_SHARE * warmup) if s == 0 else 0,
                export_at=(), eval_at=(), branch_cluster=k, split_at=tokens,
            ))  # fmt: skip
    return budget, pretrain, branches


def check_config(cfg: SplitConfig, out: Path) -> bool:
    """True when TRAIN/split.json holds this very config, False when there is none; else refused."""
    path, want = TrainLayout(out).config, canonical(cfg)
    if not path.exists():
        return False
    # A config written before a flag existed holds that flag's default.
    defaults = canonical({f.name: f.default for f in fields(SplitConfig) if f.default is not MISSING})
    have = {**defaults, **json.loads(path.read_text())}
    diff = sorted(key for key in want.keys() | have.keys() if want.get(key) != have.get(key))
    if diff:
        other = ", ".join(diff)
        raise ConfigError(f"{path}: TRAIN holds a run with other {other}; rerun with its flags or a new --out")
    return True


def prepare(cfg: SplitConfig, out: Path, clusters: tuple[int, ...] | None = None, parallel: int = 1,
            threads: int = 0, check_existing: bool = True) -> tuple[Budget, TrainJob, list[TrainJob]]:
    """Every check of a split run, nothing written: (budget, pretraining job, branch jobs).

    `check_existing` False skips the comparison with TRAIN/split.json (`add_split` grows it on purpose).
    """
    flags.number("--parallel", parallel, least=1)
    flags.number("--threads", threads, least=0, meaning="0: torch's default")
    flags.out_folder(out)
    budget, pretrain, branches = plan_jobs(cfg, out, clusters)
    info = data_mod.read_run(cfg.run)
    data_mod.check_shards(cfg.run, info, tuple(sorted({b.branch_cluster for b in branches})))
    if check_existing:
        check_config(cfg, out)
    return budget, pretrain, branches
