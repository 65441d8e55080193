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
ENGINES = ("local", "ray")
KEEP = ("all", "split-points", "last")


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
    checkpoint_every: int = 0
    """Tokens between the pretraining run's weight-only checkpoints (0: D_T / 20): the points a split can
    be added at later (`train split TRAIN --add-split-at`)."""

    def __post_init__(self) -> None:
        flags.number("--total-tokens", self.total_tokens, above=0)
        flags.number("--checkpoint-every", self.checkpoint_every, least=0, meaning="0: D_T / 20")
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
    eval_at: tuple[int, ...] = ()
    """Steps evaluated besides every `eval_every`-th: the pretraining run's loss at each split run's
    realised D + K * D', so the baseline is compared at exactly the split run's tokens."""
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


@dataclass(frozen=True)
class Execution:
    """Where and how the jobs of a split run execute; not part of the run's identity (a rerun may change it)."""

    engine: str = "local"
    """`local` (this machine) or `ray` (one Ray task per job)."""
    parallel: int = 1
    """Local: jobs at once, each in its own process (1: in this process, one after the other)."""
    threads: int = 0
    """torch threads per job process (0: torch's default for one local job, else the cores shared out; 1 on Ray)."""
    ray_address: str | None = None
    """The Ray cluster to join; None starts a local one."""
    procs_per_job: int = 1
    """Processes of one job (DDP: gloo on CPUs, NCCL on GPUs); 1 = no DDP."""
    gpus_per_job: int = 0
    """GPUs a Ray job asks for (one per process)."""
    keep_checkpoints: str = "all"
    """Pretraining weight exports kept after the run: `all`, `split-points` or `last` (the baselines at each
    split run's D + K * D' always stay)."""

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine {self.engine}: choose local or ray")
        if self.keep_checkpoints not in KEEP:
            raise ConfigError(f"--keep-checkpoints {self.keep_checkpoints}: choose one of {', '.join(KEEP)}")
        flags.number("--parallel", self.parallel, least=1)
        flags.number("--threads", self.threads, least=0, meaning="0: torch's default")
        flags.number("--procs-per-job", self.procs_per_job, least=1)
        flags.number("--gpus-per-job", self.gpus_per_job, least=0)
        if self.ray_address and self.engine != "ray":
            raise ConfigError("--ray-address needs --engine ray")
        if self.gpus_per_job and self.engine != "ray":
            raise ConfigError("--gpus-per-job needs --engine ray (locally, jobs use the GPUs they see)")
        if self.gpus_per_job > 1 and self.procs_per_job not in (1, self.gpus_per_job):
            raise ConfigError(f"--procs-per-job {self.procs_per_job}: a job of {self.gpus_per_job} GPUs runs one "
                              "process per GPU")

    @property
    def processes(self) -> int:
        """Processes of one job: --procs-per-job, or one per GPU."""
        return max(self.procs_per_job, self.gpus_per_job)
