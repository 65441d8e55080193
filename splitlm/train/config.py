"""The flags of `train split` as one typed record, checked when it is made.

Light on purpose (no torch, no transformers): the CLI builds it before loading the training code,
so a bad flag is refused at once, and nothing is written before every check has passed.
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
