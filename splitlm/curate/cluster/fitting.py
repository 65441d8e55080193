"""The k-means iterations of balanced k-means, on the fit sample: scores, prices, labels, centroids.

Each iteration moves the prices with their centroids (`transported`: each price by the mean change of its
members' scores, which keeps the warm start near balance), solves them for the current centroids on every
stride-th fit row (~FIT_COARSE_ROWS a cluster: the fit needs rough balance only, and the price steps cost
O(rows)) to within FIT_TOL of n/K (at most `steps` Newton steps plus exact shifts of groups the Newton graph
does not connect; no per-cluster sweeps, which cost more than they bought here), labels all fit rows at those
prices, then moves every centroid to the normalised mean of its rows (no re-solve after the last move: the
calibration starts from these prices). The fit stops early once fewer than `settled` of the rows changed
cluster in an iteration (after MIN_ITERS), or once the fit objective (mean cosine of the rows to their own
centroid at this iteration's labels) has not beaten its best for STALE iterations in a row (after MIN_ITERS).
The second test stops fits that never settle: on the skewed mixture at K=256 (131k rows from 20
Pareto-weighted blobs) 10-90% of the rows change cluster in every iteration and the sizes swing by tens of
thousands of rows as whole blobs trade centroids; the objective peaks by iteration 3 and only oscillates
afterwards, so the later iterations cost 60% of the time and bought nothing (the calibration balances the
final centroids). On 20 Newsgroups the objective rises every iteration until the settled test stops the fit.
Balancing in every iteration matters: with labels left unbalanced the centroids of near-equivalent clusters
(one dense mode split many ways) keep trading rows and the fit does not settle. The cluster sums are updated
from the rows that changed label only (1-5% of them after a few iterations), afresh when most changed.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from splitlm.curate.cluster.prices import solve_coarse
from splitlm.curate.cluster.rule import evaluate

FIT_TOL = 0.2  # sizes within 20% of n/K (2 rows at least) in the fit iterations
MIN_ITERS = 5  # iterations before the fit may stop as settled
FIT_COARSE_ROWS = 128  # rows per cluster on which the fit iterations solve their prices (`solve_coarse`)
STALE = 2  # iterations in a row without a new best objective after which the fit stops


def sample_rows(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted distinct row indices (sorted: sequential reads from a memory-mapped array)."""
    return np.arange(n) if m >= n else np.sort(rng.choice(n, m, replace=False))


def normalized(x_ND: np.ndarray) -> np.ndarray:
    norms_N1 = np.sqrt(np.einsum("nd,nd->n", x_ND, x_ND))[:, None]
    return np.divide(x_ND, np.maximum(norms_N1, 1e-12), dtype=np.float32)


def transported(beta_K: np.ndarray, scores_SK: np.ndarray, old_SK: np.ndarray, labels_S: np.ndarray) -> np.ndarray:
    """Prices moved with their centroids: each by the mean change of its members' scores to it, so the
    boundaries stay about where they were and the warm start stays balanced."""
    k = len(beta_K)
    rows = np.arange(len(labels_S))
    change_S = scores_SK[rows, labels_S].astype(np.float64) - old_SK[rows, labels_S]
    count_K = np.bincount(labels_S, minlength=k)
    delta_K = np.bincount(labels_S, weights=change_S, minlength=k) / np.maximum(count_K, 1)
    return (beta_K + delta_K - delta_K.mean()).astype(np.float32)


def fit_centroids(x_ND, k: int, per_centroid: int, iters: int, steps: int, balance: bool, rng: np.random.Generator,
                  settled: float = 0.0):
    """Centroids (K, D) float32 unit rows, prices (K,) float32 in score units solved for them on the fit
    sample, the normalised fit sample (k * per_centroid rows drawn with rng) and the iterations run
    (`iters`, or fewer once fewer than `settled` of the rows changed cluster in one, or once the objective
    has not improved for STALE iterations, after MIN_ITERS; `settled` 0 disables both)."""
    x_SD = normalized(np.asarray(x_ND[sample_rows(len(x_ND), k * per_centroid, rng)], dtype=np.float32))
    centroids_KD = x_SD[np.sort(rng.choice(len(x_SD), k, replace=False))].copy()
    beta_K = np.zeros(k, dtype=np.float32)
    tol = max(FIT_TOL * len(x_SD) / k, 2.0)
    sums = ClusterSums(x_SD, k)
    last = None  # (scores, labels) of the previous iteration
    best, stale = -np.inf, 0  # best mean cosine to the own centroid so far, iterations since it
    for it in range(iters):
        scores_SK = x_SD @ centroids_KD.T
        if balance and last is not None:
            beta_K = transported(beta_K, scores_SK, *last)
        rule = None
        if balance:  # Newton and group shifts only: the per-cluster sweeps cost more than they buy here
            beta_K, rule = solve_coarse(scores_SK, beta_K, steps, tol, fallback=False, rows=FIT_COARSE_ROWS)
        if rule is None:  # unbalanced, or prices solved on a subsample of the fit rows
            rule = evaluate(scores_SK, beta_K)
        changed = 1.0 if last is None else float(np.mean(rule.labels != last[1]))
        cos = float(np.mean(scores_SK[np.arange(len(x_SD)), rule.labels], dtype=np.float64))
        best, stale = (cos, 0) if cos > best else (best, stale + 1)
        centroids_KD = sums.centroids(rule.labels, centroids_KD)
        reseed_empty(x_SD, rule.labels, centroids_KD, beta_K, rng)
        last = (scores_SK, rule.labels)
        if it + 1 >= MIN_ITERS and settled and (changed < settled or stale >= STALE):
            break
    return centroids_KD, beta_K, x_SD, it + 1


class ClusterSums:
    """Per-cluster sums of the fit rows (float64), updated from the rows whose label changed (the change
    summed in float32: converting the moved rows to float64 cost ~0.5 s an iteration when most moved), or
    afresh when most rows moved (the skewed mixture at K=256 moves 10-90% of them in every iteration)."""

    def __init__(self, x_SD: np.ndarray, k: int):
        self.x_SD, self.k = x_SD, k
        self.labels = np.full(len(x_SD), -1, dtype=np.int64)
        self.sums_KD = np.zeros((k, x_SD.shape[1]))

    def centroids(self, labels_S: np.ndarray, old_KD: np.ndarray) -> np.ndarray:
        """Normalised cluster means; an empty cluster keeps its centroid (reseeded next)."""
        moved = np.flatnonzero(labels_S != self.labels)
        if 2 * len(moved) > len(labels_S):  # most rows moved: sum them all afresh (no gather of the rows)
            onehot = csr_matrix((np.ones(len(labels_S), np.float32), (labels_S, np.arange(len(labels_S)))),
                                shape=(self.k, len(labels_S)))
            self.sums_KD = (onehot @ self.x_SD).astype(np.float64)
            self.labels = labels_S.copy()
            return self._normalised(old_KD)
        was = self.labels[moved]
        rows = np.concatenate([moved, moved[was >= 0]])
        cols = np.concatenate([labels_S[moved], was[was >= 0]])
        signs = np.concatenate([np.ones(len(moved), np.float32), -np.ones(int((was >= 0).sum()), np.float32)])
        delta = csr_matrix((signs, (cols, np.searchsorted(moved, rows))), shape=(self.k, len(moved)))
        self.sums_KD += delta @ self.x_SD[moved]  # float32 partial sums (no float64 copy of the rows)
        self.labels = labels_S.copy()
        return self._normalised(old_KD)

    def _normalised(self, old_KD: np.ndarray) -> np.ndarray:
        norms_K1 = np.linalg.norm(self.sums_KD, axis=1, keepdims=True)
        return np.where(norms_K1 > 1e-9, self.sums_KD / np.maximum(norms_K1, 1e-12), old_KD).astype(np.float32)


def reseed_empty(x_SD, labels_S, centroids_KD, beta_K, rng: np.random.Generator) -> None:
    """Move each empty cluster onto a random member of the largest one, at that cluster's price.

    A centroid far from every row can stay empty however low its price goes while the others move;
    splitting the largest cluster is what faiss does too. Sizes are halved as clusters are split, but
    only clusters that have members are ever split.
    """
    sizes_K = np.bincount(labels_S, minlength=len(centroids_KD))
    for c in np.flatnonzero(sizes_K == 0):
        big = int(np.argmax(sizes_K))
        members = np.flatnonzero(labels_S == big)
        centroids_KD[c] = x_SD[members[rng.integers(len(members))]]
        beta_K[c] = beta_K[big]
        sizes_K[big] -= sizes_K[big] // 2
