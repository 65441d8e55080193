"""Plan a split from a fitted split law: optimal split point, minimal split point, flat range.

- t_s (eq. 5.1): minimise L(t, (D_T - t)/K) over the pretraining tokens t in [0, D_T], with
  L = the mean of the per-cluster laws (or the one law fitted, as the paper does in Fig. 4).
  A fine grid over t, then a bounded scalar search inside the best grid cell.
- D_split (eq. 5.2): K dL/dD (D, 0) = dL/dD' (D, 0). Under the paper's bounds (alpha1 < 1 or
  gamma2 < 1) dL/dD' at D' = 0 is -infinity, so that equation has no finite root and splitting
  would always pay "infinitesimally". We therefore define D_split with a first continued-
  pretraining step of eps tokens per branch: the smallest D where L(D, eps) < L(D + K eps, 0),
  i.e. where K branches spending eps tokens each beat pretraining on the same K eps tokens. It tends
  to eq. 5.2 as eps -> 0; eps = 0 solves eq. 5.2 itself (finite only when alpha1 = gamma2 = 1).
  The same eps is the smallest split the eq. 5.1 search considers, and D_T <= D_split means
  "never split" (t_s = D_T), as the paper prescribes.
- The flat range: every t whose loss is within `flat_tol` (0.005) of the optimum (Fig. 12).
- The compute multiplier (Fig. 1b): D_pt / D_T where plain pretraining for D_pt tokens reaches the
  split loss (infinite when the split loss is below plain pretraining's asymptote).
- f_s(N) = a N^b (App. G.2): the optimal fraction t_s / D_T at smaller sizes, fitted as a power law
  and extrapolated to the planned size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from splitlm.core.errors import ConfigError, InputError
from splitlm.train import flags
from splitlm.train.scaling.laws import Points, SplitLaw


@dataclass(frozen=True, eq=False)
class MixtureLoss:
    """L(N, D, D') in tokens and parameters: the mean of one split law per cluster."""

    thetas: tuple[np.ndarray, ...]
    n_unit: float
    token_unit: float
    law: SplitLaw = SplitLaw()

    def __call__(self, size: float, D: np.ndarray | float, Dk: np.ndarray | float) -> np.ndarray:
        D, Dk = np.broadcast_arrays(np.asarray(D, float), np.asarray(Dk, float))
        x = Points(np.full(D.shape, size / self.n_unit), D / self.token_unit, Dk / self.token_unit)
        return np.mean([self.law.predict(t, x) for t in self.thetas], axis=0)

    def partials(self, size: float, D: float, Dk: float) -> tuple[float, float]:
        """(dL/dD, dL/dD') per token."""
        n, d, dk = size / self.n_unit, D / self.token_unit, Dk / self.token_unit
        dD, dK = np.mean([self.law.partials(t, n, d, dk) for t in self.thetas], axis=0)
        return float(dD) / self.token_unit, float(dK) / self.token_unit


def load_mixture(fit_dir: Path) -> tuple[MixtureLoss, dict]:
    """The mixture loss of FIT/fit.json (written by `train fit --law split`) and the raw JSON."""
    path = fit_dir / "fit.json" if fit_dir.is_dir() else fit_dir
    if not path.exists():
        raise InputError(f"{path}: no fit.json here; run `train fit TABLE --law split --out {fit_dir}` first")
    spec = json.loads(path.read_text())
    if spec.get("law") != SplitLaw.name:
        raise ConfigError(f"{path}: plan needs a split-law fit (--law split), not {spec.get('law')!r}")
    groups = spec["params"].values() if spec.get("by") else [spec["params"]]
    names = SplitLaw().names
    thetas = tuple(np.array([g[n] for n in names], float) for g in groups)
    units = spec["units"]
    return MixtureLoss(thetas, units["n_params"], units["tokens"]), spec


def d_split(loss: MixtureLoss, size: float, k: int, eps: float, lo: float = 1e3, hi: float = 1e16) -> float:
    """The minimal split point in tokens (see the module docstring); 0 = always split, inf = never."""

    def gain(D: float) -> float:  # > 0: keep pretraining; < 0: split
        if eps > 0:
            return float(loss(size, D, eps) - loss(size, D + k * eps, 0.0))
        dD, dK = loss.partials(size, D, 0.0)
        return dK - k * dD

    grid = np.geomspace(lo, hi, 400)
    signs = np.array([gain(D) for D in grid])
    if not np.all(np.isfinite(signs)):
        raise ConfigError(
            "eq. 5.2 has no finite root: dL/dD' is -inf at D' = 0 (alpha1 < 1 or gamma2 < 1); use --cpt-step > 0"
        )
    if signs[0] < 0:
        return 0.0
    cross = np.flatnonzero((signs[:-1] > 0) & (signs[1:] <= 0))
    if len(cross) == 0:
        return math.inf
    i = cross[0]
    return float(brentq(gain, grid[i], grid[i + 1], xtol=1e-6 * grid[i], rtol=1e-12))


@dataclass(frozen=True)
class Allocation:
    """The eq. 5.1 optimum for one budget."""

    t_s: float
    cpt_tokens: float
    loss: float
    flat_range: tuple[float, float]


def optimal_split(
    loss: MixtureLoss, size: float, budget: float, k: int, eps: float, flat_tol: float = 0.005, grid: int = 4001
) -> Allocation:
    """Minimise L(t, (D_T - t)/K) over t; a split spends at least eps tokens per branch."""
    no_split = float(loss(size, budget, 0.0))
    top = budget - k * eps
    if top < 0:
        return Allocation(budget, 0.0, no_split, (budget, budget))
    t = np.append(np.linspace(0.0, top, grid), budget)
    f = loss(size, t, (budget - t) / k)
    i = int(np.argmin(f))
    t_best, f_best = float(t[i]), float(f[i])
    if i < grid:  # refine inside the neighbouring grid cells
        a, b = t[max(i - 1, 0)], t[min(i + 1, grid - 1)]
        f_t = lambda s: float(loss(size, s, (budget - s) / k))  # noqa: E731
        res = minimize_scalar(f_t, bounds=(a, b), method="bounded", options={"xatol": 1e-9 * budget})
        if res.fun < f_best:
            t_best, f_best = float(res.x), float(res.fun)
    flat = t[f <= f_best + flat_tol]
    return Allocation(t_best, (budget - t_best) / k, f_best, (float(flat.min()), float(flat.max())))


def pretraining_match(loss: MixtureLoss, size: float, target: float, budget: float) -> float:
    """Tokens of plain pretraining that reach `target` loss (inf when it never does)."""
    f = lambda D: float(loss(size, D, 0.0)) - target  # noqa: E731
    if f(budget) <= 0:
        return budget
    for doublings in range(1, 60):  # until plain pretraining gets below the target
        if f(budget * 2.0**doublings) <= 0:
            return float(brentq(f, budget * 2.0 ** (doublings - 1), budget * 2.0**doublings, rtol=1e-12))
    return math.inf


def fit_power_law(sizes: np.ndarray, fractions: np.ndarray) -> tuple[float, float]:
    """(a, b) of f_s(N) = a N^b by least squares in log space (App. G.2)."""
    if len(sizes) < 2:
        raise ConfigError("f_s(N) extrapolation needs at least two smaller model sizes")
    b, log_a = np.polyfit(np.log(sizes), np.log(fractions), 1)
    return float(math.exp(log_a)), float(b)


@dataclass(frozen=True)
class PlanConfig:
    """What to plan: a budget D_T of tokens, K branches, a model of `size` parameters."""

    budget: float
    k: int
    size: float
    cpt_step: float = 2.0**20
    """eps: tokens of the first continued-pretraining step (one of the paper's 1024 x 1024 batches)."""
    flat_tol: float = 0.005
    extrapolate_from: tuple[float, ...] = ()
    """Smaller sizes whose optimal fractions are fitted as a N^b; empty = the fit's own sizes < size."""

    def __post_init__(self) -> None:
        flags.number("--budget", self.budget, above=0, meaning="tokens")
        flags.number("--k", self.k, least=1)
        flags.number("--size", self.size, above=0, meaning="parameters")
        flags.number("--cpt-step", self.cpt_step, least=0, meaning="tokens")
        flags.number("--flat-tol", self.flat_tol, least=0)
        for s in self.extrapolate_from:
            flags.number("--extrapolate-from", s, above=0, meaning="model sizes in parameters")


def plan(loss: MixtureLoss, cfg: PlanConfig, fitted_sizes: tuple[float, ...] = ()) -> dict:
    """The plan as a JSON-ready dict (token counts as floats, inf as None)."""
    D_T, K, N, eps = cfg.budget, cfg.k, cfg.size, cfg.cpt_step
    dsplit = d_split(loss, N, K, eps)
    alloc = optimal_split(loss, N, D_T, K, eps, cfg.flat_tol)
    if D_T <= dsplit:  # the paper's rule: below the minimal split point, never split
        alloc = Allocation(D_T, 0.0, float(loss(N, D_T, 0.0)), alloc.flat_range)
    match = pretraining_match(loss, N, alloc.loss, D_T)
    out = {
        "t_s": alloc.t_s,
        "cpt_tokens": alloc.cpt_tokens,
        "loss": alloc.loss,
        "split": alloc.cpt_tokens > 0,
        "fraction": alloc.t_s / D_T,
        "flat_range": list(alloc.flat_range),
        "flat_tol": cfg.flat_tol,
        "loss_all_pretraining": float(loss(N, D_T, 0.0)),
        "loss_split_at_0": float(loss(N, 0.0, D_T / K)),
        "d_split": dsplit,
        "d_split_rule": _rule(eps, K),
        "compute_multiplier": match / D_T,
        "budget": D_T,
        "k": K,
        "size": N,
        "clusters": len(loss.thetas),
    }
    out["extrapolation"] = _extrapolate(loss, cfg, fitted_sizes)
    if len(set(fitted_sizes)) == 1 and fitted_sizes[0] != N:
        out["warning"] = f"the fit saw one model size ({fitted_sizes[0]:.3g}): its N-dependence is not identified"
    return {key: (None if isinstance(v, float) and math.isinf(v) else v) for key, v in out.items()}


def _rule(eps: float, k: int) -> str:
    if eps == 0:
        return "eq. 5.2: K dL/dD(D, 0) = dL/dD'(D, 0)"
    return f"first CPT step of eps = {eps:.6g} tokens per branch: L(D, eps) = L(D + {k}*eps, 0)"


def _extrapolate(loss: MixtureLoss, cfg: PlanConfig, fitted_sizes: tuple[float, ...]) -> dict | None:
    sizes = cfg.extrapolate_from or tuple(s for s in fitted_sizes if s < cfg.size)
    if len(sizes) < 2:
        return None
    fractions = [optimal_split(loss, s, cfg.budget, cfg.k, cfg.cpt_step).t_s / cfg.budget for s in sizes]
    a, b = fit_power_law(np.array(sizes), np.array(fractions))
    return {"sizes": list(sizes), "fractions": fractions, "a": a, "b": b, "predicted_fraction": a * cfg.size**b}


def _tok(v: float | None) -> str:
    return "never (inf)" if v is None else f"{v:.4g}"


def render(p: dict) -> str:
    """The plan as a few aligned lines."""
    D_T = p["budget"]
    lo, hi = p["flat_range"]
    mult = p["compute_multiplier"]
    lines = [
        f"plan for N = {p['size']:.4g} parameters, budget D_T = {D_T:.4g} tokens, K = {p['k']} "
        f"(mean of {p['clusters']} cluster law(s))",
        f"  optimal split point t_s     {p['t_s']:.4g} tokens ({p['fraction']:.1%} of D_T)"
        + ("" if p["split"] else ": do not split"),
        f"  CPT tokens per branch D'    {p['cpt_tokens']:.4g}",
        f"  predicted loss              {p['loss']:.4f}",
        f"  flat range (+{p['flat_tol']:g})         {lo:.4g} - {hi:.4g} tokens ({lo / D_T:.1%} - {hi / D_T:.1%})",
        f"  all pretraining             {p['loss_all_pretraining']:.4f}",
        f"  split at step 0             {p['loss_split_at_0']:.4f}",
        f"  D_split                     {_tok(p['d_split'])} tokens ({p['d_split_rule']})",
        "  compute multiplier          "
        + ("inf: plain pretraining never reaches this loss" if mult is None else f"{mult:.3g}x"),
    ]
    ex = p.get("extrapolation")
    if ex:
        lines.append(f"  f_s(N) = {ex['a']:.4g} N^{ex['b']:.4g} from {len(ex['sizes'])} smaller sizes: "
                     f"predicted fraction {ex['predicted_fraction']:.1%} (this law: {p['fraction']:.1%})")
    if "warning" in p:
        lines.append(f"  warning: {p['warning']}")
    return "\n".join(lines)


def plot_plan(loss: MixtureLoss, cfg: PlanConfig, p: dict, path: Path) -> None:
    """Predicted loss against the pretraining fraction t / D_T, with the optimum and flat range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frac = np.linspace(0.0, 1.0, 1001)
    t = frac * cfg.budget
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(frac, loss(cfg.size, t, (cfg.budget - t) / cfg.k), color="C0", label="L(t, (D_T - t)/K)")
    lo, hi = p["flat_range"]
    ax.axvspan(lo / cfg.budget, hi / cfg.budget, color="C0", alpha=0.15, label=f"within {cfg.flat_tol:g} of optimum")
    ax.axvline(p["fraction"], color="C3", ls="--", label=f"t_s / D_T = {p['fraction']:.3f}")
    top = max(p["loss_all_pretraining"], p["loss"] + 10 * cfg.flat_tol)
    ax.set_ylim(p["loss"] - 2 * cfg.flat_tol, top + 2 * cfg.flat_tol)  # the t -> 0 spike would hide the optimum
    ax.set(xlabel="pretraining fraction t / D_T", ylabel="predicted loss",
           title=f"N = {cfg.size:.3g}, D_T = {cfg.budget:.3g} tokens, K = {cfg.k}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
