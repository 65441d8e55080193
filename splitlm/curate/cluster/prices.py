"""Dual prices for balanced k-means: per-cluster prices under which every cluster gets ~n/K rows.

label(x) = argmax_c s_c(x) - beta_c with s the cosine to centroid c and beta_c = b_c / 2 (b in
squared-distance units, as stored in the router). Balanced prices minimise the convex dual
    g(beta) = sum_i max_c (s_ic - beta_c) + (n/K) sum_c beta_c,
whose gradient is n/K - sizes. Each step of `solve_prices` descends g, at O(n K) or less, never a sort
of the scores:
- a Newton step: the Hessian is the graph Laplacian of boundary densities (rows whose best and
  runner-up clusters are c, c'), each cluster measured over its own window (the gap within which it has
  ~|error| boundary rows: steep and flat boundaries alike), backtracked until g drops (Armijo);
- an exact shift of every group of clusters the Laplacian does not connect to the largest group (e.g.
  the clusters of one far mode of the data), to the price at which the group holds its share, the
  others fixed: an exact minimisation of g along that direction (`shifts.py`);
- when the Newton step is refused (or halved and no group was off), the same exact shift for every
  cluster still off, one after another.
Newton settles the many coupled near-ties inside a dense mode in a few steps, where the old per-cluster
quantile updates needed ~50 (each a pass per cluster); the exact shifts make the big moves between
modes that no local model sees. Measured (skewed mixture, 200k x K=64, warm from the fit sample):
6 steps to sizes within 0.5% of n/K.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from threadpoolctl import ThreadpoolController

from splitlm.curate.cluster.rule import Rule, evaluate, reevaluate
from splitlm.curate.cluster.shifts import Columns, Sweep

STEPS = (1.0, 0.5, 0.25, 0.125)  # Newton step lengths tried before falling back to exact shifts
STALL = 0.7  # a Newton step that leaves the worst size error above this fraction of it has stalled
EDGES = np.geomspace(1e-7, 4.0, 80)  # gap bins for the per-cluster windows
COARSE_ROWS = 192  # rows per cluster of the subsample on which `solve_coarse` makes the big moves


def solve_coarse(scores_NK: np.ndarray, beta_K: np.ndarray, steps: int, tol: float, fallback: bool = True,
                 rows: int = COARSE_ROWS) -> tuple[np.ndarray, Rule | None]:
    """Prices solved on every stride-th row (~`rows` rows a cluster; all rows when there are fewer than
    2 `rows` a cluster), to within the subsample's own sampling noise (sqrt of its rows a cluster) or
    `tol` scaled down, then likewise on every stride/4-th row while that is still a subsample: warm
    starts that make the big moves at a fraction of the cost of all rows. Measured (skewed mixture,
    calibration on 200k rows, machine loaded): K=256 7-14 s with a first solve on every 4th row, 37 s
    without; K=64 5-6 s with solves on every 16th then 4th row, 15 s with every 16th only. Returns the
    prices and, when the solve was on all rows, its rule (else None)."""
    n, k = scores_NK.shape
    stride = int(n / k // rows)
    if stride < 2:
        return solve_prices(scores_NK, beta_K, steps, tol, fallback)
    while stride >= 2:  # then on every (stride / 4)-th row, while that is a subsample: each level's start is
        sub_MK = np.ascontiguousarray(scores_NK[::stride])  # off by the coarser level's sampling noise only
        beta_K = solve_prices(sub_MK, beta_K, steps, max(tol / stride, np.sqrt(len(sub_MK) / k), 1.5), fallback)[0]
        stride //= 4
    return beta_K, None


def solve_prices(scores_NK: np.ndarray, beta_K: np.ndarray, steps: int, tol: float, fallback: bool = True
                 ) -> tuple[np.ndarray, Rule]:
    """Prices (score units, mean 0, float32) under which every size is within `tol` rows of n/K, or
    where `steps` steps got; and the rule at exactly those float32 prices."""
    n, k = scores_NK.shape
    beta = _centered(np.asarray(beta_K, dtype=np.float64))
    rule = evaluate(scores_NK, beta)
    columns = Columns(scores_NK)  # the shifts' column reads, shared by all steps of this solve
    for _ in range(steps if k > 1 else 0):
        worst = np.abs(rule.sizes - n / k).max()
        if worst <= tol:
            break
        beta, rule, groups, t = _newton_step(scores_NK, beta, rule)
        stalled = fallback and (t == 0 or np.abs(rule.sizes - n / k).max() > STALL * worst)
        beta, rule = _exact_shifts(columns, beta, rule, groups, t, tol, stalled)
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
    for t in STEPS:
        trial_beta = _centered(beta + t * delta)
        trial = reevaluate(scores_NK, trial_beta, rule, beta)
        if trial.dual <= rule.dual - 1e-4 * t * slope:
            return trial_beta, trial, groups, t
    return beta, rule, groups, 0.0


def _newton_direction(rule: Rule, err_K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve L d = err within each connected group of the boundary graph (group totals taken out)."""
    k = len(err_K)
    h_K = _windows(rule, err_K)
    win = np.maximum(h_K[rule.labels], h_K[rule.second])
    near = rule.gap < win
    pairs = rule.labels[near] * k + rule.second[near]
    w_KK = np.bincount(pairs, weights=1.0 / (2 * win[near]), minlength=k * k).reshape(k, k)
    rho_KK = w_KK + w_KK.T  # rows per unit of price difference across each boundary
    _, groups = connected_components(csr_matrix(rho_KK > 0), directed=False)
    total_G = np.bincount(groups, weights=err_K)
    e_K = err_K - (total_G / np.bincount(groups))[groups]
    lap_KK = np.diag(rho_KK.sum(1) + 1e-6 / h_K) - rho_KK
    with _blas().limit(limits=1, user_api="blas"):  # a K x K solve: threads only add waiting
        return np.linalg.solve(lap_KK, e_K), groups


def _windows(rule: Rule, err_K: np.ndarray) -> np.ndarray:
    """Per cluster: the gap within which it has max(|err|, 8) boundary rows (as best or runner-up)."""
    k, nb = len(err_K), len(EDGES) + 1
    b = np.searchsorted(EDGES, rule.gap)
    hist = np.bincount(rule.labels * nb + b, minlength=k * nb) + np.bincount(rule.second * nb + b, minlength=k * nb)
    cum = np.cumsum(hist.reshape(k, nb), 1)
    need = np.minimum(np.maximum(np.abs(err_K), 8), cum[:, -1])
    return np.append(EDGES, EDGES[-1])[np.minimum((cum < need[:, None]).sum(1), nb - 1)]


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _exact_shifts(columns: Columns, beta, rule: Rule, groups: np.ndarray, t: float, tol: float, stalled: bool):
    """One Gauss-Seidel sweep of exact shifts: every group whose total is off (the largest group held
    fixed, the smallest first); then, if Newton stalled (refused, or the worst error barely moved), or
    was halved and no group was off, every cluster still off, the furthest first."""
    scores_NK = columns.scores_NK
    n, k = scores_NK.shape
    total_G = np.bincount(groups, weights=rule.sizes - n / k)
    off = [g for g in np.argsort(np.bincount(groups), kind="stable")[:-1] if abs(total_G[g]) > tol]
    if not off and t == 1 and not stalled:
        return beta, rule
    sweep = Sweep(scores_NK, beta, rule, columns)
    for g in off:
        members = np.flatnonzero(groups == g)
        sweep.shift(members, len(members) * n / k)
    if stalled or (t < 1 and not off):
        err_K = np.bincount(sweep.labels, minlength=k) - n / k
        worst = np.argsort(-np.abs(err_K), kind="stable")
        for c in worst[np.abs(err_K[worst]) > tol]:
            sweep.shift(np.array([c]), n / k)
    new_beta = _centered(sweep.beta_K)
    return new_beta, reevaluate(scores_NK, new_beta, rule, beta)
