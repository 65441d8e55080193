"""Balanced spherical k-means: K unit centroids plus per-cluster biases, one assignment rule.

Rule (training assignment and router alike): label(x) = argmin_c ||x - c||^2 + b_c for unit x.
Plain k-means on embeddings is badly unbalanced (5-90x max/min measured here); the biases b_c are
dual prices that make crowded clusters dearer until each holds ~N/K points.

Fit (price solver in `prices.py`), on a seeded sample of k * sample_per_centroid rows, for `iters` iterations:
  scores S = x c^T (one GEMM) -> solve biases on S so sizes reach N/K (cheap O(nK) steps, warm
  started) -> assign -> centroids = normalised means.
Then the biases are re-solved for the final centroids on a larger calibration sample
(k * calibrate_per_centroid rows; all rows when N is smaller): with 512 rows per cluster the sizes
of a cluster over the whole corpus would wander ~4% from the sample's, too much for max/min <= 1.1.
`assign` streams any number of rows through the rule in chunks: faiss on a visible GPU; on CPU one
BLAS GEMM per chunk and a running top-2 (faiss' own k=2 search measured ~7x slower here). Near-ties
are re-scored exactly, so labels do not depend on batching. `assign_with_capacity` enforces a hard
cap ceil((1+eps) N/K) by spilling the members that lose least (smallest regret = best minus
second-best biased score) to their best cluster with room.
Cost: iters * (n_fit K D) for the fit, one pass of N K D for the assignment.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.curate.cluster.faiss_ops import gpu_biased_index, gpu_count, gpu_top2
from splitlm.curate.cluster.prices import solve_biases, top2

# Rows whose two best biased scores are closer than this are re-scored exactly (float64, row by row),
# so a vector gets the same label alone or in any batch: float32 GEMM error here is < 3e-5.
TIE_MARGIN = 1e-4


@dataclass(frozen=True)
class KMeansConfig:
    k: int = 16
    """Number of clusters (--k)."""
    iters: int = 20
    """Fit iterations (--iters)."""
    seed: int = 0
    """Seeds the fit sample, the initial centroids and the calibration sample (--seed)."""
    sample_per_centroid: int = 512
    """Fit sample size per cluster; the paper-style range is 256-1000."""
    calibrate_per_centroid: int = 4096
    """Rows per cluster on which the final biases are solved; 0 = reuse the fit sample."""
    balance: bool = True
    """False gives plain spherical k-means (all biases 0)."""
    capacity_eps: float | None = None
    """If set, `assign_with_capacity` caps every cluster at ceil((1+eps) N/K)."""
    steps_per_iter: int = 3
    """Bias updates per fit iteration (warm-started from the last)."""
    bias_steps: int = 50
    """Max bias updates in the final solve on the calibration sample."""
    chunk: int = 65536
    """Rows per chunk when streaming the assignment."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"--k {self.k}: must be >= 1")
        if self.iters < 1:
            raise ConfigError(f"--iters {self.iters}: must be >= 1")
        if self.sample_per_centroid < 1 or self.calibrate_per_centroid < 0:
            raise ConfigError("sample_per_centroid must be >= 1 and calibrate_per_centroid >= 0")
        if self.capacity_eps is not None and not self.capacity_eps >= 0:
            raise ConfigError(f"--capacity-eps {self.capacity_eps}: must be >= 0")
        if min(self.steps_per_iter, self.bias_steps, self.chunk) < 1:
            raise ConfigError("steps_per_iter, bias_steps and chunk must be >= 1")


@dataclass(frozen=True, eq=False)
class KMeansModel:
    centroids_KD: np.ndarray  # float32, unit rows
    biases_K: np.ndarray  # float32, squared-distance units, mean 0
    objective: float  # mean ||x - c_label||^2 (no bias) on the calibration sample
    sample_sizes_K: np.ndarray  # cluster sizes on the calibration sample under the rule
    n_fit: int  # rows in the fit sample
    n_calibrate: int  # rows in the calibration sample
    iterations: int
    seconds: float

    @property
    def max_min(self) -> float:
        return balance_stats(self.sample_sizes_K).max_min


@dataclass(frozen=True, eq=False)
class BalanceStats:
    sizes_K: np.ndarray
    max_min: float  # inf when a cluster is empty
    imbalance: float  # faiss' imbalance factor K * sum(n_c^2) / N^2; 1.0 is perfect


def balance_stats(labels_or_sizes: np.ndarray, k: int | None = None) -> BalanceStats:
    """From labels (pass k) or from per-cluster sizes (k=None)."""
    a = np.asarray(labels_or_sizes)
    sizes = a.astype(np.int64) if k is None else np.bincount(a, minlength=k).astype(np.int64)
    n, kk = sizes.sum(), len(sizes)
    max_min = float(sizes.max() / sizes.min()) if sizes.min() > 0 else math.inf
    return BalanceStats(sizes, max_min, float(kk * (sizes.astype(np.float64) ** 2).sum() / max(n, 1) ** 2))


def fit_balanced_kmeans(x_ND: np.ndarray, config: KMeansConfig | None = None) -> KMeansModel:
    """Fit centroids and biases on seeded samples of x (rows are normalised here)."""
    cfg = config or KMeansConfig()
    start = time.perf_counter()
    n = _check(x_ND, cfg.k)
    rng = np.random.default_rng(cfg.seed)
    fit_S = _sample(n, cfg.k * cfg.sample_per_centroid, rng)
    x_SD = _normalized(np.asarray(x_ND[fit_S], dtype=np.float32))
    centroids_KD = x_SD[np.sort(rng.choice(len(x_SD), cfg.k, replace=False))].copy()
    biases_K = np.zeros(cfg.k, dtype=np.float32)
    for _ in range(cfg.iters):
        scores_KS = centroids_KD @ x_SD.T
        if cfg.balance:  # a few warm-started steps: the centroids move anyway
            biases_K = solve_biases(scores_KS, biases_K, cfg.steps_per_iter, tol=0.02)
        labels_S = top2(scores_KS - biases_K[:, None] / 2)[2]
        centroids_KD = _centroids(x_SD, labels_S, centroids_KD)
        _reseed_empty(x_SD, labels_S, centroids_KD, biases_K, rng)
    if cfg.calibrate_per_centroid:
        x_SD = _normalized(np.asarray(x_ND[_sample(n, cfg.k * cfg.calibrate_per_centroid, rng)], np.float32))
    scores_KS = centroids_KD @ x_SD.T
    if cfg.balance:
        biases_K = solve_biases(scores_KS, biases_K, cfg.bias_steps, tol=0.005)
    top1_S, _, labels_S = top2(scores_KS - biases_K[:, None] / 2)
    cos_S = top1_S + biases_K[labels_S] / 2
    return KMeansModel(
        centroids_KD=centroids_KD,
        biases_K=biases_K,
        objective=float(np.mean(2.0 - 2.0 * cos_S, dtype=np.float64)),
        sample_sizes_K=np.bincount(labels_S, minlength=cfg.k),
        n_fit=len(fit_S),
        n_calibrate=len(x_SD),
        iterations=cfg.iters,
        seconds=time.perf_counter() - start,
    )


def assign(
    x_ND: np.ndarray, centroids_KD: np.ndarray, biases_K: np.ndarray, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """labels_N int32 = argmin_c ||x - c||^2 + b_c over normalised x; dist_N float32 = ||x - c||^2."""
    labels_N, dist_N, _ = _assign_top2(x_ND, centroids_KD, biases_K, chunk)
    return labels_N, dist_N


def assign_with_capacity(
    x_ND: np.ndarray, centroids_KD: np.ndarray, biases_K: np.ndarray, eps: float, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """Like `assign`, but no cluster holds more than ceil((1+eps) N/K) rows."""
    labels_N, dist_N, regret_N = _assign_top2(x_ND, centroids_KD, biases_K, chunk)
    k = len(centroids_KD)
    cap = math.ceil((1 + eps) * len(labels_N) / k)
    evicted = []
    for c in np.flatnonzero(np.bincount(labels_N, minlength=k) > cap):
        members = np.flatnonzero(labels_N == c)
        by_regret = members[np.argsort(regret_N[members], kind="stable")]
        evicted.append(by_regret[: len(members) - cap])  # those who lose least by moving
    if not evicted:
        return labels_N, dist_N
    spill_E = np.concatenate(evicted)
    spill_E = spill_E[np.argsort(-regret_N[spill_E], kind="stable")]  # who loses most chooses first
    room_K = cap - np.bincount(np.delete(labels_N, spill_E), minlength=k)
    cos_EK = _exact_cos(np.asarray(x_ND[spill_E], np.float32), centroids_KD)
    biased_EK = cos_EK - biases_K.astype(np.float64) / 2
    pending = np.arange(len(spill_E))
    while len(pending):  # each round fills at least one cluster or places everyone
        choice = np.argmax(np.where(room_K > 0, biased_EK[pending], -np.inf), axis=1)
        order = np.argsort(choice, kind="stable")
        first = np.searchsorted(choice[order], np.arange(k))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order)) - first[choice[order]]
        ok = rank < room_K[choice]
        labels_N[spill_E[pending[ok]]] = choice[ok]
        room_K -= np.bincount(choice[ok], minlength=k)
        pending = pending[~ok]
    labels_E = labels_N[spill_E]
    sq_c = (centroids_KD.astype(np.float64) ** 2).sum(1)
    dist_N[spill_E] = np.maximum(1.0 + sq_c[labels_E] - 2.0 * cos_EK[np.arange(len(spill_E)), labels_E], 0)
    return labels_N, dist_N


def _check(x_ND: np.ndarray, k: int) -> int:
    if x_ND.ndim != 2:
        raise ConfigError(f"k-means needs a 2-d array of vectors, got shape {x_ND.shape}")
    if k > len(x_ND):
        raise ConfigError(f"--k {k} is larger than the number of vectors ({len(x_ND)}): lower --k or add data")
    return len(x_ND)


def _sample(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted distinct row indices (sorted: sequential reads from a memory-mapped array)."""
    return np.arange(n) if m >= n else np.sort(rng.choice(n, m, replace=False))


def _normalized(x_ND: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    norms_N1 = np.sqrt(np.einsum("nd,nd->n", x_ND, x_ND))[:, None]
    return np.divide(x_ND, np.maximum(norms_N1, 1e-12), out=out, dtype=np.float32)


def _centroids(x_SD: np.ndarray, labels_S: np.ndarray, old_KD: np.ndarray) -> np.ndarray:
    """Normalised cluster means; an empty cluster keeps its centroid (its bias will draw rows back)."""
    from scipy.sparse import csr_matrix

    n, k = len(x_SD), len(old_KD)
    onehot_KS = csr_matrix((np.ones(n, dtype=np.float32), (labels_S, np.arange(n))), shape=(k, n))
    sums_KD = np.asarray(onehot_KS @ x_SD)
    norms_K1 = np.linalg.norm(sums_KD, axis=1, keepdims=True)
    return np.where(norms_K1 > 0, sums_KD / np.maximum(norms_K1, 1e-12), old_KD).astype(np.float32)


def _reseed_empty(x_SD, labels_S, centroids_KD, biases_K, rng: np.random.Generator) -> None:
    """Move each empty cluster onto a random member of the largest one, at that cluster's price.

    A centroid far from every row can stay empty however low its price goes while the others move;
    splitting the largest cluster is what faiss does too.
    """
    sizes_K = np.bincount(labels_S, minlength=len(centroids_KD))
    for c in np.flatnonzero(sizes_K == 0):
        big = int(np.argmax(sizes_K))
        members = np.flatnonzero(labels_S == big)
        centroids_KD[c] = x_SD[members[rng.integers(len(members))]]
        biases_K[c] = biases_K[big]
        sizes_K[c] = sizes_K[big] = sizes_K[big] // 2


def _assign_top2(x_ND, centroids_KD, biases_K, chunk):
    """Labels, squared distances and regrets (best minus second-best biased score) of every row."""
    n, k = len(x_ND), len(centroids_KD)
    sq_c = (centroids_KD.astype(np.float64) ** 2).sum(1)
    half_b = biases_K.astype(np.float32) / 2
    gpu_index = gpu_biased_index(centroids_KD, biases_K) if gpu_count() > 0 else None
    labels_N = np.empty(n, dtype=np.int32)
    dist_N = np.empty(n, dtype=np.float32)
    regret_N = np.empty(n, dtype=np.float32)
    for s in range(0, n, chunk):
        x_CD = np.asarray(x_ND[s : s + chunk], dtype=np.float32)
        norm_C = np.sqrt(np.einsum("nd,nd->n", x_CD, x_CD))
        if gpu_index is not None:
            top1_C, top2_C, label_C = gpu_top2(gpu_index, x_CD / np.maximum(norm_C, 1e-12)[:, None])
        else:  # one GEMM, then divide the K x C scores by the norms instead of copying x normalised
            cos_KC = centroids_KD @ x_CD.T
            cos_KC /= np.maximum(norm_C, 1e-12)
            top1_C, top2_C, label_C = top2(cos_KC - half_b[:, None])
        regret_C = top1_C - top2_C if k > 1 else np.full(len(x_CD), np.inf, np.float32)
        cos_C = (top1_C + half_b[label_C]).astype(np.float64)
        close = np.flatnonzero(regret_C < TIE_MARGIN)
        if len(close):
            label_C[close], cos_C[close], regret_C[close] = _exact_rule(x_CD[close], centroids_KD, biases_K)
        dist_N[s : s + len(x_CD)] = np.maximum((norm_C > 0) + sq_c[label_C] - 2.0 * cos_C, 0)
        labels_N[s : s + len(x_CD)] = label_C
        regret_N[s : s + len(x_CD)] = regret_C
    return labels_N, dist_N, regret_N


def _exact_rule(x_mD, centroids_KD, biases_K):
    """Batch-independent rule for near-ties: float64 per-row dot products, lowest index wins ties."""
    cos_mK = _exact_cos(x_mD, centroids_KD)
    biased_mK = cos_mK - biases_K.astype(np.float64) / 2
    label_m = np.argmax(biased_mK, axis=1)
    top2_m2 = np.sort(biased_mK, axis=1)[:, -2:] if len(centroids_KD) > 1 else np.full((len(x_mD), 2), np.inf)
    return label_m, cos_mK[np.arange(len(x_mD)), label_m], top2_m2[:, 1] - top2_m2[:, 0]


def _exact_cos(x_mD: np.ndarray, centroids_KD: np.ndarray, block: int = 256) -> np.ndarray:
    """Cosines in float64 from elementwise products and per-row sums: no BLAS, no batch effects."""
    c_KD = centroids_KD.astype(np.float64)
    out_mK = np.empty((len(x_mD), len(c_KD)))
    for s in range(0, len(x_mD), block):
        x_bD = x_mD[s : s + block].astype(np.float64)
        x_bD /= np.maximum(np.sqrt((x_bD * x_bD).sum(1, keepdims=True)), 1e-12)
        out_mK[s : s + block] = (x_bD[:, None, :] * c_KD[None]).sum(-1)
    return out_mK
