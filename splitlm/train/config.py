"""The typed records of split training, checked when they are made: the flags of `train split`
(`SplitConfig`) and one training run (`TrainJob`, the input of `runner.train`).

Light on purpose (no torch, no transformers): the CLI builds and checks them before loading the
training code, so a bad flag is refused at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from splitlm.core.errors import ConfigError
from splitlm.train import flags, models

PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class SplitConfig:
    """Everything that defines a split run; a rerun into the same TRAIN must match it."""

    run: Path
    """The curated run folder."""
    size: str
    """Model size (see `models.SIZES`)."""
    total_tokens: int
    """D_T: the whole budget, pretraining plus all K branches."""
    split_at: tuple[int, ...]
    """Split points t_s in pretraining tokens (0 = branch from the initial weights)."""
    arch: str = "gpt2"
    """`gpt2` or `llama`."""
    batch_size: int = 8
    """Windows per step."""
    eval_every: int = 0
    """Tokens between evaluations (0: D_T / 20)."""
    warmup_tokens: int = -1
    """Pretraining warmup in tokens (-1: 1% of D_T; the paper used 10,000 steps of 1M tokens)."""
    seed: int = 0
    """Seeds initial weights and data order."""
    eval_windows: int = 256
    """Validation windows per cluster and evaluation (0: all)."""
    precision: str = "auto"
    """`auto`, `bf16` or `fp32`."""

    def __post_init__(self) -> None:
        flags.number("--total-tokens", self.total_tokens, above=0)
        for t in self.split_at:
            flags.number("--split-at", t, least=0)
        flags.number("--batch-size", self.batch_size, least=1, meaning="windows per step")
        flags.number("--eval-every", self.eval_every, least=0, meaning="0: D_T / 20")
        if self.warmup_tokens != -1:
            flags.number("--warmup-tokens", self.warmup_tokens, least=0)
        flags.number("--seed", self.seed, least=0)
        flags.number("--eval-windows", self.eval_windows, least=0, meaning="0: all")
        models.get_size(self.size)
        if self.arch not in models.ARCHES:
            raise ConfigError(f"--arch {self.arch}: choose one of {', '.join(models.ARCHES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision {self.precision}: choose one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class TrainJob:
    """One training run over the Trainer: the pretraining run or one branch."""

    name: str
    """`pretrain` or `branch-XXXXXXXXXXXX-cKK` (split tokens, cluster)."""
    out: Path
    """The job's folder."""
    run: Path
    """The curated run (manifest.json + shards/)."""
    size: str
    """A key of `models.SIZES`."""
    arch: str
    """`gpt2` or `llama`."""
    init: Path | None
    """None: fresh weights from `seed`; else a `save_pretrained` folder (weights only)."""
    train_clusters: tuple[int, ...]
    """Clusters whose train shards form the data: all for pretraining, one for a branch."""
    eval_clusters: tuple[int, ...]
    """Clusters whose val shards are evaluated every `eval_every` steps."""
    steps: int
    """Optimizer steps; tokens = steps x batch_size x seq_len."""
    warmup_steps: int
    """Linear warmup, then constant LR."""
    batch_size: int
    """Windows per step."""
    eval_every: int
    """Steps between evaluations; the last step is always evaluated."""
    save_every: int
    """Steps between resumable Trainer checkpoints."""
    export_at: tuple[int, ...] = ()
    """Steps whose weights are exported with `save_pretrained` (0 = the initial weights)."""
    branch_cluster: int | None = None
    """The branch's cluster; None for pretraining."""
    split_at: int = -1
    """Pretraining tokens the branch starts from; -1 for pretraining."""
    seed: int = 0
    """Seeds the initial weights and the data order."""
    eval_windows: int = 512
    """Validation windows per cluster and evaluation (0: all)."""
    precision: str = "auto"
    """`auto` (bf16 autocast where the CPU/GPU supports it), `bf16` or `fp32`."""
    threads: int = 0
    """torch threads (0: leave torch's default)."""
    verbose: bool = True
    """Print one progress line per evaluation."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"{self.name}: a budget of {self.steps} steps; raise the token budget")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision {self.precision}: choose one of {', '.join(PRECISIONS)}")


def export_dir(job_out: Path, tokens: int) -> Path:
    return job_out / "exports" / f"tokens-{tokens:012d}"
