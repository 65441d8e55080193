"""Dual prices for balanced k-means: per-cluster prices under which every cluster gets ~n/K rows.

label(x) = argmax_c s_c(x) - beta_c with s the cosine to centroid c and beta_c = b_c / 2 (b in
squared-distance units, as stored in the router). Balanced prices minimise the convex dual
    g(beta) = sum_i max_c (s_ic - beta_c) + (n/K) sum_c beta_c,
whose gradient is n/K - sizes. `solve_prices` descends g three ways, each step O(n K) passes over the
scores, never a sort of all of them:
- a Newton step: the Hessian is the graph Laplacian of boundary densities (rows whose best and
  second-best clusters are c, c' within a small gap window), backtracked until g drops (Armijo);
- an exact shift of each small group of clusters the Laplacian cannot reach (no boundary rows with the
  rest within the window, e.g. all clusters in one far mode of the data) to the price at which the group
  holds its share, the others fixed: an exact minimisation of g along that direction;
- when Newton's step is refused, the same exact shift for the worst clusters one by one.
Newton handles the many coupled near-ties inside a mode in a few steps (the old per-cluster quantile
updates needed ~50); the exact shifts handle the big moves between modes a local model cannot see.
Measured on 200k rows x K=64 of a skewed mixture: 4-10 steps to sizes within 0.5% of n/K.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components

from splitlm.curate.cluster.rule import Rule, evaluate
from splitlm.curate.cluster.shifts import Sweep

MAX_SHIFTS = 8  # exact single-cluster shifts per step (each is one pass over the scores)


def solve_prices(scores_NK: np.ndarray, beta_K: np.ndarray, steps: int, tol: float,
                 exact: bool = True) -> tuple[np.ndarray, Rule]:
    """Prices (score units, mean 0, float32) under which every size is within `tol` rows of n/K, or
    where `steps` steps got; and the rule at those prices. exact=False (the fit iterations) may return
    the labels a last sweep of shifts tracked instead of re-scoring: every row's best is followed, a row
    moved twice in one sweep may miss a third cluster."""
    n, k = scores_NK.shape
    beta = _centered(np.asarray(beta_K, dtype=np.float64))
    rule = evaluate(scores_NK, beta)
    for step in range(steps if k > 1 else 0):
        if np.abs(rule.sizes - n / k).max() <= tol:
            break
        beta, rule, groups, t = _newton_step(scores_NK, beta, rule)
        beta, rule = _exact_shifts(scores_NK, beta, rule, groups, t, tol, exact or step < steps - 1)
    return beta.astype(np.float32), rule


def _centered(beta: np.ndarray) -> np.ndarray:
    """Prices are defined up to a constant: mean 0 (every evaluated price vector is centred first)."""
    return beta - beta.mean()


def _newton_step(scores_NK, beta, rule: Rule):
    """Newton step backtracked until g drops (Armijo): new prices, rule, groups, step taken (0: none)."""
    n, k = scores_NK.shape
    err_K = rule.sizes - n / k
    delta, groups = _newton_direction(rule, err_K)
    slope = float(err_K @ delta)  # -(directional derivative of g), > 0
    for t in (1.0, 0.5, 0.25, 0.125):
        trial_beta = _centered(beta + t * delta)
        trial = evaluate(scores_NK, trial_beta)
        if trial.dual <= rule.dual - 1e-4 * t * slope:
            return trial_beta, trial, groups, t
    return beta, rule, groups, 0.0


def _newton_direction(rule: Rule, err_K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve L d = err within each connected group of the boundary graph (group totals taken out)."""
    n, k = len(rule.labels), len(err_K)
    m = int(np.clip(2 * np.abs(err_K).sum(), min(8 * k, n - 1), max(n // 4, 1)))
    h = float(np.partition(rule.gap, m)[m]) + 1e-9  # window: ~2x the rows that must move lie within it
    near = rule.gap < h
    pairs = rule.labels[near] * k + rule.second[near]
    w_KK = np.bincount(pairs, minlength=k * k).reshape(k, k).astype(np.float64)
    rho_KK = (w_KK + w_KK.T) / (2 * h)  # rows per unit of price difference across each boundary
    _, groups = connected_components(rho_KK > 0, directed=False)
    total_G = np.bincount(groups, weights=err_K)
    e_K = err_K - (total_G / np.bincount(groups))[groups]
    lap_KK = np.diag(rho_KK.sum(1) + 1e-6 / h) - rho_KK
    return np.linalg.solve(lap_KK, e_K), groups


def _exact_shifts(scores_NK, beta, rule: Rule, groups: np.ndarray, t: float, tol: float, rescore: bool):
    """One Gauss-Seidel sweep of exact shifts: each group whose total is off (the largest group held
    fixed, the smallest first); then, if Newton stalled (t == 0, or t < 1 and no group was off), the
    clusters furthest from n/K, up to MAX_SHIFTS of them."""
    n, k = scores_NK.shape
    total_G = np.bincount(groups, weights=rule.sizes - n / k)
    order = np.argsort(np.bincount(groups), kind="stable")[:-1]
    off = [g for g in order if abs(total_G[g]) > tol]
    if off or t < 1:
        sweep = Sweep(scores_NK, beta, rule.labels, rule.second, rule.top, rule.gap)
        for g in off:
            members = np.flatnonzero(groups == g)
            sweep.shift(members, len(members) * n / k)
        if t == 0 or (t < 1 and not off):  # Newton stalls: move the worst clusters one by one
            err_K = np.bincount(sweep.labels, minlength=k) - n / k
            worst = np.argsort(-np.abs(err_K), kind="stable")[:MAX_SHIFTS]
            for c in worst[np.abs(err_K[worst]) > tol]:
                sweep.shift(np.array([c]), n / k)
        beta = _centered(sweep.beta_K)
        rule = evaluate(scores_NK, beta) if rescore else sweep.rule()
    return beta, rule
