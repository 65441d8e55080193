"""Scaling laws as small classes: parameter names, bounds, transforms, prediction and gradient.

Three laws over one input record (`Points`: model size N, pretraining tokens D, continued-
pretraining tokens Dk, already divided by the units below):
- `SplitLaw`   eq. 4.2-4.3  L = E0 + Ep/(1+(N/Ns)^g1)/(1+(Dk/Ds)^g2) + A/(Dk^a1 + c D^a2) + B N^-kappa
- `Chinchilla` eq. 4.1      L = E + A N^-alpha + B T^-beta, with T = D + Dk the tokens the model saw
- `LiewKato`   eq. H.1      L = E + A Dk^-a1 D^(-a2 + a3 log Dk) + B N^-beta, defined for D, Dk > 0

Units: the paper's bounds (Ds in [500, 700]) assume tokens in billions (1k steps of 1M tokens);
we also count N in billions so every coefficient is O(1) and L-BFGS-B sees a well-scaled problem.

Bounds follow the paper's Table 6 (written for the single-size law). Where it is silent we chose:
Ns in [0.01, 100] billion parameters on a log scale (it spans decades), gamma1 and kappa in
[0.1, 1] like the other powers, B positive (softplus) like A. The baselines' bounds are not in the
paper: coefficients positive, powers in [0, 2] (a3 in [-1, 1]). Every bound can be overridden.

Transforms map an unconstrained optimiser variable u to a parameter v: hi = inf -> v = lo +
softplus(u); finite [lo, hi] -> v = lo + (hi - lo) sigmoid(u) (in log space when `log_scale`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from splitlm.core.errors import ConfigError

BILLION = 1e9


@dataclass(frozen=True)
class Param:
    """One law parameter: its paper name, its range and where random starts are drawn."""

    name: str
    lo: float
    hi: float = math.inf
    log_scale: bool = False  # sigmoid over [log lo, log hi]: for a scale spanning decades (Ns)
    start: tuple[float, float] | None = None  # natural-unit range for starts (default: [lo, hi])

    def __post_init__(self) -> None:
        bound = f"--bound {self.name}={self.lo:g},{self.hi:g}"
        if not (math.isfinite(self.lo) and self.lo < self.hi) or math.isnan(self.hi):
            raise ConfigError(f"{bound}: need a finite LO < HI (HI may be inf)")
        if self.log_scale and (self.lo <= 0 or not math.isfinite(self.hi)):
            raise ConfigError(f"{bound}: {self.name} is log-scaled: need 0 < LO < HI < inf")

    @property
    def start_range(self) -> tuple[float, float]:
        if self.start is not None:
            return self.start
        return (self.lo, self.hi) if math.isfinite(self.hi) else (self.lo + 0.1, self.lo + 3.0)


@dataclass(frozen=True, eq=False)
class Points:
    """n runs in law units: N_n = params / n_unit, D_n and Dk_n = tokens / token_unit."""

    N: np.ndarray
    D: np.ndarray
    Dk: np.ndarray
    group: np.ndarray | None = None
    """Index of each run's group, for a law shared by groups (`shared.SharedLaw`)."""

    def take(self, mask: np.ndarray) -> Points:
        return Points(self.N[mask], self.D[mask], self.Dk[mask], None if self.group is None else self.group[mask])

    def __len__(self) -> int:
        return len(self.N)


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * u))  # overflow-free logistic


@dataclass(frozen=True)
class Law:
    """A parametric loss law. Subclasses define `params` and `_predict`."""

    name: ClassVar[str]
    params: tuple[Param, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def with_bounds(self, bounds: dict[str, tuple[float, float]]) -> Law:
        """The same law with some ranges replaced; unknown names are a ConfigError."""
        unknown = set(bounds) - set(self.names)
        if unknown:
            raise ConfigError(f"--bound: {sorted(unknown)} not parameters of {self.name} ({self.names})")
        new = tuple(
            replace(p, lo=bounds[p.name][0], hi=bounds[p.name][1], start=None) if p.name in bounds else p
            for p in self.params
        )
        return replace(self, params=new)

    def natural(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Parameters v = T(u) and dv/du, elementwise."""
        v, dv = np.empty_like(u), np.empty_like(u)
        for i, p in enumerate(self.params):
            if not math.isfinite(p.hi):
                v[i], dv[i] = p.lo + np.logaddexp(0.0, u[i]), _sigmoid(u[i])
                continue
            s = _sigmoid(u[i])
            if p.log_scale:
                span = math.log(p.hi / p.lo)
                v[i] = p.lo * math.exp(span * s)
                dv[i] = v[i] * span * s * (1 - s)
            else:
                v[i], dv[i] = p.lo + (p.hi - p.lo) * s, (p.hi - p.lo) * s * (1 - s)
        return v, dv

    def free(self, v: np.ndarray) -> np.ndarray:
        """The inverse of `natural`: optimiser variables for parameter values inside the ranges."""
        u = np.empty(len(self.params))
        for i, p in enumerate(self.params):
            if not math.isfinite(p.hi):
                y = max(v[i] - p.lo, 1e-12)
                u[i] = y + math.log(-math.expm1(-y))  # log(expm1(y)) without overflow
                continue
            s = (math.log(v[i] / p.lo) / math.log(p.hi / p.lo)) if p.log_scale else (v[i] - p.lo) / (p.hi - p.lo)
            s = min(max(s, 1e-9), 1 - 1e-9)
            u[i] = math.log(s / (1 - s))
        return u

    def valid(self, x: Points) -> np.ndarray:
        """Rows where the law is defined (finite); others are dropped before fitting."""
        return (x.N > 0) & (x.D >= 0) & (x.Dk >= 0) & (x.D + x.Dk > 0)

    def predict(self, theta: np.ndarray, x: Points) -> np.ndarray:
        return self._predict(theta, x, jacobian=False)[0]

    def predict_jacobian(self, theta: np.ndarray, x: Points) -> tuple[np.ndarray, np.ndarray]:
        """Loss (n,) and its gradient with respect to the natural parameters (n, p)."""
        pred, jac = self._predict(theta, x, jacobian=True)
        assert jac is not None
        return pred, jac

    def _predict(self, theta: np.ndarray, x: Points, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def raw_params(self, values: dict[str, float], n_unit: float, token_unit: float) -> dict[str, float] | None:
        """Coefficients re-expressed for N in parameters and tokens in tokens, when that is simple."""
        return None


def _xlogy0(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * log(y) with 0 where x == 0 (the limit of the terms it is used for)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(np.where(y > 0, y, 1.0)))


def _split_params() -> tuple[Param, ...]:
    return (
        Param("E0", 1.0, 3.0),
        Param("Ep", 0.0, start=(0.05, 1.0)),
        Param("Ns", 0.01, 100.0, log_scale=True),
        Param("gamma1", 0.1, 1.0),
        Param("Ds", 500.0, 700.0),
        Param("gamma2", 0.1, 1.0),
        Param("A", 0.0, start=(0.1, 5.0)),
        Param("alpha1", 0.1, 1.0),
        Param("alpha2", 0.1, 1.0),
        Param("c", 0.5, 4.0),
        Param("B", 0.0, start=(0.01, 1.0)),
        Param("kappa", 0.1, 1.0),
    )


@dataclass(frozen=True)
class SplitLaw(Law):
    """The paper's law (eq. 4.2-4.3): an irreducible loss that falls from E0 + Ep to E0 with Dk."""

    name: ClassVar[str] = "split"
    params: tuple[Param, ...] = field(default_factory=_split_params)

    def _predict(self, theta: np.ndarray, x: Points, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        E0, Ep, Ns, g1, Ds, g2, A, a1, a2, c, B, kappa = theta
        r = (x.N / Ns) ** g1
        q = (x.Dk / Ds) ** g2
        fN, fK = 1.0 / (1.0 + r), 1.0 / (1.0 + q)
        k1, d2 = x.Dk**a1, x.D**a2
        S = k1 + c * d2
        P = x.N**-kappa
        pred = E0 + Ep * fN * fK + A / S + B * P
        if not jacobian:
            return pred, None
        dS = -A / S**2
        cols = (
            np.ones_like(pred),
            fN * fK,
            Ep * fK * fN**2 * g1 * r / Ns,
            -Ep * fK * fN**2 * _xlogy0(r, x.N / Ns),
            Ep * fN * fK**2 * g2 * q / Ds,
            -Ep * fN * fK**2 * _xlogy0(q, x.Dk / Ds),
            1.0 / S,
            dS * _xlogy0(k1, x.Dk),
            dS * c * _xlogy0(d2, x.D),
            dS * d2,
            P,
            -B * P * np.log(x.N),
        )
        return pred, np.stack(cols, axis=1)

    def partials(self, theta: np.ndarray, N: float, D: float, Dk: float) -> tuple[float, float]:
        """(dL/dD, dL/dDk) in law units. dL/dDk is -inf at Dk = 0 when alpha1 < 1 or gamma2 < 1."""
        E0, Ep, Ns, g1, Ds, g2, A, a1, a2, c, B, kappa = theta
        with np.errstate(divide="ignore", invalid="ignore"):
            S = Dk**a1 + c * D**a2
            fN = 1.0 / (1.0 + (N / Ns) ** g1)
            fK = 1.0 / (1.0 + (Dk / Ds) ** g2)
            dD = -A / S**2 * c * a2 * D ** (a2 - 1) if D > 0 else -math.inf
            dK_power = -A / S**2 * a1 * np.float64(Dk) ** (a1 - 1)
            dK = dK_power - Ep * fN * fK**2 * g2 / Ds * np.float64(Dk / Ds) ** (g2 - 1)
        return float(dD), float(dK)


@dataclass(frozen=True)
class Chinchilla(Law):
    """Hoffmann et al. (eq. 4.1) over all tokens the model saw, D + Dk."""

    name: ClassVar[str] = "chinchilla"
    params: tuple[Param, ...] = (
        Param("E", 0.0, start=(0.5, 3.0)),
        Param("A", 0.0, start=(0.1, 5.0)),
        Param("B", 0.0, start=(0.1, 5.0)),
        Param("alpha", 0.0, 2.0, start=(0.05, 1.0)),
        Param("beta", 0.0, 2.0, start=(0.05, 1.0)),
    )

    def _predict(self, theta: np.ndarray, x: Points, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        E, A, B, alpha, beta = theta
        T = x.D + x.Dk
        PN, PT = x.N**-alpha, T**-beta
        pred = E + A * PN + B * PT
        if not jacobian:
            return pred, None
        cols = (np.ones_like(pred), PN, PT, -A * PN * np.log(x.N), -B * PT * np.log(T))
        return pred, np.stack(cols, axis=1)

    def raw_params(self, values: dict[str, float], n_unit: float, token_unit: float) -> dict[str, float] | None:
        # A (N/u)^-alpha = (A u^alpha) N^-alpha: the form Hoffmann et al. and Epoch AI report.
        A, B = values["A"] * n_unit ** values["alpha"], values["B"] * token_unit ** values["beta"]
        return {**values, "A": A, "B": B}


@dataclass(frozen=True)
class LiewKato(Law):
    """Liew & Kato (2025) as the paper writes it (eq. H.1); needs D > 0 and Dk > 0."""

    name: ClassVar[str] = "liew-kato"
    params: tuple[Param, ...] = (
        Param("E", 0.0, start=(0.5, 3.0)),
        Param("A", 0.0, start=(0.1, 5.0)),
        Param("alpha1", 0.0, 2.0, start=(0.05, 1.0)),
        Param("alpha2", 0.0, 2.0, start=(0.05, 1.0)),
        Param("alpha3", -1.0, 1.0, start=(-0.1, 0.1)),
        Param("B", 0.0, start=(0.01, 1.0)),
        Param("beta", 0.0, 2.0, start=(0.05, 1.0)),
    )

    def valid(self, x: Points) -> np.ndarray:
        return (x.N > 0) & (x.D > 0) & (x.Dk > 0)

    def _predict(self, theta: np.ndarray, x: Points, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        E, A, a1, a2, a3, B, beta = theta
        lk, ld = np.log(x.Dk), np.log(x.D)
        core = np.exp(-a1 * lk + (-a2 + a3 * lk) * ld)
        PN = x.N**-beta
        pred = E + A * core + B * PN
        if not jacobian:
            return pred, None
        term = A * core
        cols = (np.ones_like(pred), core, -term * lk, -term * ld, term * lk * ld, PN, -B * PN * np.log(x.N))
        return pred, np.stack(cols, axis=1)


LAWS: dict[str, type[Law]] = {cls.name: cls for cls in (SplitLaw, Chinchilla, LiewKato)}


def make_law(name: str, bounds: dict[str, tuple[float, float]] | None = None) -> Law:
    """The law called `name` (split, chinchilla, liew-kato) with optional bound overrides."""
    if name not in LAWS:
        raise ConfigError(f"--law {name!r}: choose one of {', '.join(LAWS)}")
    law = LAWS[name]()
    return law.with_bounds(bounds) if bounds else law
