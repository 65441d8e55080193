"""`train fit --by G --share`: one law for every group, each group with its own floor.

Fitting K groups separately costs K x p parameters; with few runs per group (a CPU-scale split run
evaluates each cluster a handful of times) every group is underdetermined. Sharing keeps one set of
shape parameters for all groups and gives each group only its own floor (E0 of the split law, E of
the baselines), an additive offset: p - 1 + K parameters for all K groups' points together. It
assumes the groups differ by a constant loss offset; the per-group scores in fit.json show where
that does not hold.

The result is reported as one full parameter set per group (the shared values with the group's
floor), so `train plan` and the report read it like separate fits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.train.scaling.fit import FitConfig, FitResult, fit_law
from splitlm.train.scaling.laws import Law, Points

FLOOR = 0
"""Every law's first parameter (E0, E) is its floor: a constant added to the prediction."""


@dataclass(frozen=True)
class SharedLaw(Law):
    """`base` with its floor replaced by one floor per group; points carry their group index."""

    base: Law | None = None
    groups: tuple[str, ...] = ()

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.base.name if self.base else "shared"

    def valid(self, x: Points) -> np.ndarray:
        return self.base.valid(x)

    def _predict(self, theta: np.ndarray, x: Points, jacobian: bool):
        p, f = len(self.base.params), FLOOR
        base_theta = np.insert(theta[: p - 1], f, 0.0)
        pred, jac = self.base._predict(base_theta, x, jacobian)
        pred = pred + theta[p - 1 :][x.group]
        if not jacobian:
            return pred, None
        onehot = np.zeros((len(x), len(self.groups)))
        onehot[np.arange(len(x)), x.group] = 1.0
        return pred, np.concatenate([np.delete(jac, f, axis=1), onehot], axis=1)

    def group_theta(self, theta: np.ndarray, g: int) -> np.ndarray:
        """The base law's parameters of group `g`: the shared values with its own floor."""
        p = len(self.base.params)
        return np.insert(theta[: p - 1], FLOOR, theta[p - 1 + g])


def share(base: Law, groups: list[str]) -> SharedLaw:
    """`base` with one floor per group, named like `E0[3]`."""
    floor = base.params[FLOOR]
    shared = tuple(p for i, p in enumerate(base.params) if i != FLOOR)
    floors = tuple(replace(floor, name=f"{floor.name}[{g}]") for g in groups)
    return SharedLaw(params=shared + floors, base=base, groups=tuple(groups))


def _huber(law: Law, theta: np.ndarray, x: Points, loss: np.ndarray, cfg: FitConfig) -> float:
    pred = law.predict(theta, x)
    r = np.log(pred) - np.log(loss) if cfg.residuals == "log" else pred - loss
    a, d = np.abs(r), cfg.delta
    return float(np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d)).sum())


def fit_shared(base: Law, points: dict[str, Points], losses: dict[str, np.ndarray], cfg: FitConfig):
    """One `SharedLaw` fit over every group's points; returns one FitResult per group."""
    if len(points) < 2:
        raise ConfigError("--share: needs --by with at least two groups to share parameters across")
    groups = list(points)
    x = pooled(points)
    law = share(base, groups)
    t0 = time.perf_counter()
    fit = fit_law(law, x, np.concatenate([losses[g] for g in groups]), cfg)
    seconds = time.perf_counter() - t0
    out = {}
    for i, g in enumerate(groups):
        theta = law.group_theta(fit.theta, i)
        objective = _huber(base, theta, points[g], losses[g], cfg)
        out[g] = FitResult(base, theta, objective, len(points[g]), seconds, fit.local_runs)
    return out


def pooled(points: dict[str, Points]) -> Points:
    """Every group's points in one set, each with its group index: what the shared law is fitted to."""
    parts = list(points.values())
    group = np.concatenate([np.full(len(x), i) for i, x in enumerate(parts)])
    return Points(*(np.concatenate([getattr(x, a) for x in parts]) for a in ("N", "D", "Dk")), group=group)
