"""Fit a scaling law: the sum of Huber residuals, minimised by basin-hopping with L-BFGS-B steps.

Objective (App. G.1): sum_i Huber_delta(r_i), delta = 1e-3, with r_i = L_hat_i - L_i (loss space,
the paper) or log L_hat_i - log L_i (log space, Epoch AI's Chinchilla replication).

Two traps, both because the objective is ~1e-3: L-BFGS-B's stopping test divides the decrease by
max(|f|, 1), so on the raw objective it stops after a few iterations; and basin-hopping's default
temperature T = 1 accepts every hop, a random walk. We minimise the objective divided by delta,
which is ~ sum |r_i| (O(1)): both defaults then mean what they say.

Cost: starts x (hops + 1) L-BFGS-B runs with the analytic gradient; an 800-point split-law fit
with the defaults takes seconds (benchmarks/fit.py). Deterministic for a seed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import basinhopping, minimize

from splitlm.core.errors import ConfigError
from splitlm.train import flags
from splitlm.train.scaling.laws import Law, Points

Residuals = Literal["loss", "log"]


@dataclass(frozen=True)
class FitConfig:
    """How to fit one law to one set of runs."""

    delta: float = 1e-3
    """Huber shape: residuals below it count quadratically, above it linearly."""
    residuals: Residuals = "loss"
    """`loss` (the paper) or `log` (Epoch AI's Chinchilla replication)."""
    starts: int = 8
    """Seeded random starts, each followed by basin-hopping."""
    hops: int = 20
    """Basin-hopping iterations per start."""
    temperature: float = 1.0
    """Basin-hopping temperature, on the objective divided by delta (~ sum of |residuals|)."""
    stepsize: float = 0.5
    """Initial basin-hopping step in the unconstrained variables (adapted as it runs)."""
    seed: int = 0
    share: bool = False
    """With groups: one law for all of them, each group with its own floor (`shared`)."""
    allow_underdetermined: bool = False
    """Fit even when a law has fewer points than parameters (`identify.check`)."""

    def __post_init__(self) -> None:
        if self.residuals not in ("loss", "log"):
            raise ConfigError(f"--residuals {self.residuals!r}: choose loss or log")
        flags.number("--delta", self.delta, above=0)
        flags.number("--starts", self.starts, least=1)
        flags.number("--hops", self.hops, least=0)
        flags.number("--seed", self.seed, least=0)
        flags.number("temperature", self.temperature, above=0)
        flags.number("stepsize", self.stepsize, above=0)


@dataclass(frozen=True, eq=False)
class FitResult:
    """The best parameters found, in law units, and the (unscaled) Huber objective they reach."""

    law: Law
    theta: np.ndarray
    objective: float
    n: int
    seconds: float
    local_runs: int

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.law.names, (float(v) for v in self.theta)))

    def predict(self, x: Points) -> np.ndarray:
        return self.law.predict(self.theta, x)


def huber_objective(law: Law, x: Points, loss: np.ndarray, cfg: FitConfig):
    """f(u) = sum Huber_delta(r(T(u))) / delta and its gradient in the free variables u."""
    delta, log_space = cfg.delta, cfg.residuals == "log"
    target = np.log(loss) if log_space else loss

    def f(u: np.ndarray) -> tuple[float, np.ndarray]:
        v, dv = law.natural(u)
        with np.errstate(all="ignore"):
            pred, jac = law.predict_jacobian(v, x)
            if log_space:
                pred, jac = np.log(pred), jac / pred[:, None]
            r = pred - target
            a = np.abs(r)
            value = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)).sum() / delta
            grad = (np.clip(r, -delta, delta) @ jac) / delta * dv
        if not (math.isfinite(value) and np.all(np.isfinite(grad))):
            return 1e30, np.zeros_like(u)  # outside the law's domain: a wall the line search backs off
        return float(value), grad

    return f


def draw_starts(law: Law, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Starts drawn uniformly (log-uniformly for log-scaled parameters) in each start range."""
    starts = []
    for _ in range(count):
        v = np.empty(len(law.params))
        for i, p in enumerate(law.params):
            lo, hi = p.start_range
            v[i] = math.exp(rng.uniform(math.log(lo), math.log(hi))) if p.log_scale else rng.uniform(lo, hi)
        starts.append(law.free(v))
    return starts


_LBFGS = {"method": "L-BFGS-B", "jac": True, "options": {"maxiter": 3000}}


def fit_law(law: Law, x: Points, loss: np.ndarray, cfg: FitConfig = FitConfig()) -> FitResult:
    """The lowest objective over `cfg.starts` basin-hopping runs, polished by one last L-BFGS-B."""
    if len(x) < 1:
        raise ConfigError(f"fit {law.name}: no training rows left (check --train-where and the filters)")
    t0 = time.perf_counter()
    f = huber_objective(law, x, loss, cfg)
    rng = np.random.default_rng(cfg.seed)
    best_u, best_f, runs = None, math.inf, 0
    for u0 in draw_starts(law, cfg.starts, rng):
        res = basinhopping(
            f, u0, niter=cfg.hops, T=cfg.temperature, stepsize=cfg.stepsize,
            minimizer_kwargs=_LBFGS, rng=np.random.default_rng(rng.integers(2**63)),
        )
        runs += cfg.hops + 1
        if res.fun < best_f:
            best_u, best_f = res.x, float(res.fun)
    tight = {"maxiter": 10000, "ftol": 1e-15, "gtol": 1e-12}
    polish = minimize(f, best_u, method="L-BFGS-B", jac=True, options=tight)
    if polish.fun < best_f:
        best_u, best_f = polish.x, float(polish.fun)
    theta, _ = law.natural(best_u)
    return FitResult(law, theta, best_f * cfg.delta, len(x), time.perf_counter() - t0, runs + 1)


def metrics(pred: np.ndarray, obs: np.ndarray) -> dict[str, float | int | None]:
    """MAE, MRE, R^2 and Pearson r of predictions against observations (None when undefined)."""
    n = len(obs)
    if n == 0:
        return {"mae": None, "mre": None, "r2": None, "r": None, "n": 0}
    err = pred - obs
    ss_tot = float(((obs - obs.mean()) ** 2).sum())
    spread = n > 1 and ss_tot > 0 and float(pred.std()) > 0
    return {
        "mae": float(np.abs(err).mean()),
        "mre": float((np.abs(err) / np.abs(obs)).mean()),
        "r2": 1.0 - float((err**2).sum()) / ss_tot if spread else None,
        "r": float(np.corrcoef(pred, obs)[0, 1]) if spread else None,
        "n": n,
    }
