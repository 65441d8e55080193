"""The phonebook sweep's settings (light: no torch), checked when made, and the named presets.

`limited` and `sufficient` are the paper's two budgets (Fig. 2a, 2b) at CPU scale, sizes found by
measurement (see the README's Evaluate section); `paper` gives Sec. 3.2's own sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from splitlm.core.errors import ConfigError
from splitlm.train import flags, models

CPU_SIZE = models.SIZES["phonebook-cpu"]
"""The CPU-scale memoriser of the limited budget (~0.1M parameters): small enough that two clusters
of facts press on it within a budget a 2-core CPU trains in minutes."""


@dataclass(frozen=True)
class PhonebookConfig:
    """Everything that defines a sweep; a rerun into the same DIR must match it."""

    facts: int
    """Facts per cluster."""
    size: str
    """Model size (`models.SIZES`)."""
    batch_size: int
    """Facts per step."""
    total_steps: int
    """T: pretraining plus both branches."""
    warmup_steps: int
    """Linear warmup of the pretraining run (and, scaled, of a branch from step 0)."""
    fractions: tuple[float, ...]
    """Shares of T spent pretraining on both clusters; must include 0 and 1."""
    alphas: tuple[float, ...] = (0.0, 0.5, 1.0)
    """Overlaps |c0 & c1| / facts."""
    budget: str = "limited"
    """`limited` or `sufficient`: the name of the budget (the plot's title)."""
    seed: int = 0
    """Seeds the facts, the initial weights and the data order."""
    precision: str = "fp32"

    def __post_init__(self) -> None:
        flags.number("--facts", self.facts, least=1)
        flags.number("--batch-size", self.batch_size, least=1)
        flags.number("--steps", self.total_steps, least=2)
        flags.number("--warmup-steps", self.warmup_steps, least=0)
        flags.number("--seed", self.seed, least=0)
        models.get_size(self.size)
        for f in self.fractions:
            flags.number("--fractions", f, least=0)
            if f > 1:
                raise ConfigError(f"--fractions {f:g}: a fraction of the budget is at most 1")
        if 0 not in self.fractions or 1 not in self.fractions:
            raise ConfigError("--fractions: include 0 and 1 (the two endpoints of Fig. 2)")
        for a in self.alphas:
            if not 0 <= a <= 1:
                raise ConfigError(f"--alphas {a:g}: an overlap is between 0 and 1")
        for f in self.fractions:
            if f < 1 and (self.total_steps - round(f * self.total_steps)) // 2 < 1:
                raise ConfigError(
                    f"--fractions {f:g}: leaves under one step per branch of --steps {self.total_steps}"
                )

    def split_steps_tokens(self, tokens_per_step: int) -> tuple[int, ...]:
        """Split points (in tokens) of the fractions below 1."""
        return tuple(round(f * self.total_steps) * tokens_per_step for f in self.fractions if f < 1)


# CPU presets, both found by measurement (README, Evaluate; 3 seeds each). `limited`: at alpha 0 the
# best interior fraction beats both endpoints by 20-32 points. `sufficient`: a narrower memoriser at
# lr 1e-3 (lr 3e-3 stalls near 90% on one cluster), 150 facts per cluster: one cluster is memorised
# by ~1,800 steps, both together need well over 4,000, so a step-0 split (2,000 steps per branch)
# memorises while pretraining only does not (Fig. 2b). `paper`: Sec. 3.2's sizes
# (6 layers, 8 heads, 256 wide, lr 1e-4 = models.SIZES["phonebook"]; 80,000 facts, batch 640,
# 20,000 warmup; 100k / 200k steps).
FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
PRESETS = {
    ("cpu", "limited"): {
        "facts": 300,
        "size": "phonebook-cpu",
        "batch_size": 32,
        "total_steps": 1600,
        "warmup_steps": 160,
    },
    ("cpu", "sufficient"): {
        "facts": 150,
        "size": "phonebook-cpu-narrow",
        "batch_size": 64,
        "total_steps": 4000,
        "warmup_steps": 160,
    },
    ("paper", "limited"): {
        "facts": 80_000,
        "size": "phonebook",
        "batch_size": 640,
        "total_steps": 100_000,
        "warmup_steps": 20_000,
    },
    ("paper", "sufficient"): {
        "facts": 80_000,
        "size": "phonebook",
        "batch_size": 640,
        "total_steps": 200_000,
        "warmup_steps": 20_000,
    },
}


def preset(scale: str, budget: str, seed: int = 0) -> PhonebookConfig:
    """The config of a named preset: scale `cpu` or `paper`, budget `limited` or `sufficient`."""
    if (scale, budget) not in PRESETS:
        raise ConfigError(f"--budget {budget}: choose limited or sufficient")
    return PhonebookConfig(**PRESETS[scale, budget], fractions=FRACTIONS, budget=budget, seed=seed)


QUICK_FRACTIONS = (0.0, 0.75, 1.0)
QUICK_ALPHAS = (0.0,)


def quick_preset(seed: int = 0) -> PhonebookConfig:
    """`make demo`'s sweep: the CPU limited budget at overlap 0, split at step 0, at 75% (the best
    fraction of the full sweep on seeds 0-2) and never. Its three points are those of the full
    sweep with the same seed (the same jobs): 3,600 steps against the full sweep's 24,720."""
    return replace(preset("cpu", "limited", seed), fractions=QUICK_FRACTIONS, alphas=QUICK_ALPHAS)
