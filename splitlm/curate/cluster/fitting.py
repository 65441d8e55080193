"""The k-means iterations of balanced k-means, on the fit sample: scores, prices, labels, centroids."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from splitlm.curate.cluster.prices import solve_prices
from splitlm.curate.cluster.rule import evaluate


def sample_rows(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted distinct row indices (sorted: sequential reads from a memory-mapped array)."""
    return np.arange(n) if m >= n else np.sort(rng.choice(n, m, replace=False))


def normalized(x_ND: np.ndarray) -> np.ndarray:
    norms_N1 = np.sqrt(np.einsum("nd,nd->n", x_ND, x_ND))[:, None]
    return np.divide(x_ND, np.maximum(norms_N1, 1e-12), dtype=np.float32)


def fit_centroids(x_ND, k: int, per_centroid: int, iters: int, steps: int, balance: bool, rng: np.random.Generator):
    """Centroids (K, D) float32 unit rows, prices (K,) float32 in score units, and the normalised fit
    sample (k * per_centroid rows drawn with rng)."""
    x_SD = normalized(np.asarray(x_ND[sample_rows(len(x_ND), k * per_centroid, rng)], dtype=np.float32))
    centroids_KD = x_SD[np.sort(rng.choice(len(x_SD), k, replace=False))].copy()
    beta_K = np.zeros(k, dtype=np.float32)
    tol = max(0.02 * len(x_SD) / k, 1.0)  # the centroids move anyway: a few warm-started steps
    for _ in range(iters):
        scores_SK = x_SD @ centroids_KD.T
        if balance:
            beta_K, rule = solve_prices(scores_SK, beta_K, steps, tol, exact=False)
        else:
            rule = evaluate(scores_SK, beta_K)
        centroids_KD = centroids(x_SD, rule.labels, centroids_KD)
        reseed_empty(x_SD, rule.labels, centroids_KD, beta_K, rng)
    return centroids_KD, beta_K, x_SD


def centroids(x_SD: np.ndarray, labels_S: np.ndarray, old_KD: np.ndarray) -> np.ndarray:
    """Normalised cluster means; an empty cluster keeps its centroid (reseeded next)."""
    n, k = len(x_SD), len(old_KD)
    onehot_KS = csr_matrix((np.ones(n, dtype=np.float32), (labels_S, np.arange(n))), shape=(k, n))
    sums_KD = np.asarray(onehot_KS @ x_SD)
    norms_K1 = np.linalg.norm(sums_KD, axis=1, keepdims=True)
    return np.where(norms_K1 > 0, sums_KD / np.maximum(norms_K1, 1e-12), old_KD).astype(np.float32)


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
