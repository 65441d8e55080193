"""Balanced spherical k-means: K unit centroids plus per-cluster biases, one assignment rule.

Rule (training assignment and router alike): label(x) = argmin_c ||x - c||^2 + b_c for unit x.
Plain k-means on embeddings is badly unbalanced (5-90x max/min measured here); the biases b_c are
dual prices that make crowded clusters dearer until each holds ~N/K points.

Fit (`fitting.py`), on a seeded sample of k * sample_per_centroid rows (only those rows are read: x may
be a memmap or any array-like of rows), for at most `iters` iterations:
  scores S = x c^T (one numpy/BLAS GEMM: 2-3x faster than faiss' k=1 search on this AVX2 CPU) -> prices
  moved with their centroids -> a few warm-started price steps on every stride-th row of S (~128 rows a
  cluster; `prices.py`: Newton on the dual plus exact group shifts; O(n K) passes) -> labels of all fit
  rows at those prices -> centroids = normalised means; it stops once fewer than settled_fraction of the
  rows changed cluster (objective flat: measured).
Then the prices are solved for the final centroids on the calibration rows, first on every stride-th of
them (~192 a cluster: the big moves, cheaply), then on all of them: all rows when N <= k *
calibrate_per_centroid (and N K scores fit in CALIBRATE_MAX_SCORES), else a seeded sample of that
many. A sample of m rows per cluster leaves each cluster's size over the whole corpus ~1/sqrt(m) off
the sample's (4096 rows: ~1.6%, too much for max/min <= 1.05 at K=256), hence all rows when possible.
`fit_and_assign` labels every row from the calibration's own scores when the calibration used all
rows: no second pass (the clusters stage takes those labels through `fit_with_labels`). `assign`
streams any number of rows through the rule in chunks: faiss on a visible GPU; on CPU one BLAS GEMM per chunk and two argmax passes (faiss' own k=2
search measured ~7x slower here). Near-ties are re-scored exactly (`scoring.py`), so labels do not
depend on batching. `assign_with_capacity` enforces a hard cap ceil((1+eps) N/K) (`capacity.py`).
Cost: iters * (n_fit K D) for the fit, one pass of N K D for calibration and labels.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.curate.cluster.capacity import spill_to_capacity
from splitlm.curate.cluster.fitting import fit_centroids, sample_rows
from splitlm.curate.cluster.prices import solve_coarse, solve_prices
from splitlm.curate.cluster.rule import Rule, evaluate
from splitlm.curate.cluster.scoring import assign_top2, cos_chunk, labels_from_rule

CALIBRATE_TOL = 0.01
"""Final sizes within 1% of n/K on the calibration rows (max/min <= ~1.02 there). Measured, skewed mixture
200k rows, one thread: 0.5% cost 15-18% more CPU time at K=64 and K=256 than 1% for max/min 1.005-1.009
against 1.009-1.019 (`benchmarks/kmeans.py`)."""
CALIBRATE_MAX_SCORES = 1 << 28  # float32 calibration scores held at once (1 GiB): caps rows at 2^28 / K


_FLAGS = {"k": "--k", "iters": "--iters", "sample_per_centroid": "--sample-per-centroid"}  # `curate cluster`'s


@dataclass(frozen=True)
class KMeansConfig:
    k: int = 16
    """Number of clusters (--k)."""
    iters: int = 20
    """Fit iterations (--iters); fewer once the fit has settled (see settled_fraction)."""
    seed: int = 0
    """Seeds the fit sample, the initial centroids and the calibration sample (--seed)."""
    sample_per_centroid: int = 512
    """Fit sample size per cluster; the paper-style range is 256-1000."""
    calibrate_per_centroid: int = 16384
    """Rows per cluster on which the final biases are solved (all rows when N is smaller); 0 = reuse
    the fit sample."""
    balance: bool = True
    """False gives plain spherical k-means (all biases 0)."""
    capacity_eps: float | None = None
    """If set, `assign_with_capacity` caps every cluster at ceil((1+eps) N/K)."""
    steps_per_iter: int = 3
    """Max price steps per fit iteration (warm-started from the last; to sizes within 20% of n/K)."""
    bias_steps: int = 30
    """Max price steps in the final solve on the calibration rows."""
    chunk: int = 65536
    """Rows per chunk when streaming the assignment."""
    settled_fraction: float = 0.02
    """The fit stops early (after at least 5 iterations, `fitting.MIN_ITERS`) once fewer than this fraction of the fit
    rows changed cluster in an iteration; 0 = always run `iters`."""

    def __post_init__(self) -> None:
        # Fields set on the command line (`curate cluster`) are named by their flag; the others, which
        # only Python callers set, by their KMeansConfig field.
        for name, low in (("k", 1), ("iters", 1), ("sample_per_centroid", 1), ("calibrate_per_centroid", 0),
                          ("steps_per_iter", 1), ("bias_steps", 1), ("chunk", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"{_FLAGS.get(name, 'KMeansConfig.' + name)} {value!r}: must be an integer >= {low}")
        if not 0 <= self.settled_fraction < 1:
            raise ConfigError(f"KMeansConfig.settled_fraction {self.settled_fraction!r}: must be in [0, 1)")
        if self.capacity_eps is not None and not self.capacity_eps >= 0:
            raise ConfigError(f"--capacity-eps {self.capacity_eps}: must be >= 0")


@dataclass(frozen=True, eq=False)
class KMeansModel:
    centroids_KD: np.ndarray  # float32, unit rows
    biases_K: np.ndarray  # float32, squared-distance units, mean 0
    objective: float  # mean ||x - c_label||^2 (no bias) on the calibration rows
    sample_sizes_K: np.ndarray  # cluster sizes on the calibration rows under the rule
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
    return _fit(x_ND, config or KMeansConfig(), label_all=False)[0]


def fit_with_labels(x_ND: np.ndarray, config: KMeansConfig | None = None) -> tuple[KMeansModel, np.ndarray | None]:
    """`fit_balanced_kmeans`, plus every row's `assign` label (int32) when the calibration scored all rows
    (None otherwise): the clusters stage hands them to its part tasks instead of scoring every row again."""
    model, labelled = _fit(x_ND, config or KMeansConfig(), label_all=True)
    return model, None if labelled is None else labelled[0]


def fit_and_assign(x_ND: np.ndarray, config: KMeansConfig | None = None) -> tuple[KMeansModel, np.ndarray, np.ndarray]:
    """`fit_balanced_kmeans`, then every row's label and squared distance: `assign`'s output (or
    `assign_with_capacity`'s when capacity_eps is set) for the fitted model. When the calibration
    covered all rows, its scores are labelled directly (the numbers `assign` computes, one pass fewer)."""
    cfg = config or KMeansConfig()
    model, labelled = _fit(x_ND, cfg, label_all=True)
    labels_N, dist_N, regret_N = labelled or assign_top2(x_ND, model.centroids_KD, model.biases_K, cfg.chunk)
    if cfg.capacity_eps is not None:
        labels_N, dist_N = spill_to_capacity(x_ND, labels_N, dist_N, regret_N, model.centroids_KD,
                                             model.biases_K, cfg.capacity_eps)
    return model, labels_N, dist_N


def assign(
    x_ND: np.ndarray, centroids_KD: np.ndarray, biases_K: np.ndarray, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """labels_N int32 = argmin_c ||x - c||^2 + b_c over normalised x; dist_N float32 = ||x - c||^2."""
    labels_N, dist_N, _ = assign_top2(x_ND, centroids_KD, biases_K, chunk)
    return labels_N, dist_N


def assign_with_capacity(
    x_ND: np.ndarray, centroids_KD: np.ndarray, biases_K: np.ndarray, eps: float, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """Like `assign`, but no cluster holds more than ceil((1+eps) N/K) rows."""
    labels_N, dist_N, regret_N = assign_top2(x_ND, centroids_KD, biases_K, chunk)
    return spill_to_capacity(x_ND, labels_N, dist_N, regret_N, centroids_KD, biases_K, eps)


def _fit(x_ND: np.ndarray, cfg: KMeansConfig, label_all: bool):
    """The model, and (labels, dist, regrets) of all rows when label_all and the calibration saw them all."""
    start = time.perf_counter()
    n = _check(x_ND, cfg.k)
    rng = np.random.default_rng(cfg.seed)
    centroids_KD, beta_K, x_SD, iterations = fit_centroids(x_ND, cfg.k, cfg.sample_per_centroid, cfg.iters,
                                                           cfg.steps_per_iter, cfg.balance, rng, cfg.settled_fraction)
    m = min(n, cfg.k * cfg.calibrate_per_centroid, max(CALIBRATE_MAX_SCORES // cfg.k, cfg.k))
    if not cfg.calibrate_per_centroid:
        scores_NK, norm_N = x_SD @ centroids_KD.T, np.ones(len(x_SD), np.float32)
    else:
        scores_NK, norm_N = _scores(x_ND, sample_rows(n, m, rng) if m < n else None, centroids_KD, cfg.chunk)
    biases_K, rule = _calibrate(scores_NK, beta_K, cfg)
    cos_N = scores_NK[np.arange(len(scores_NK)), rule.labels].astype(np.float64)
    model = KMeansModel(
        centroids_KD=centroids_KD, biases_K=biases_K, objective=float(np.mean(2.0 - 2.0 * cos_N)),
        sample_sizes_K=rule.sizes, n_fit=len(x_SD), n_calibrate=len(scores_NK), iterations=iterations,
        seconds=time.perf_counter() - start,
    )
    if not (label_all and cfg.calibrate_per_centroid and m == n):
        return model, None
    return model, labels_from_rule(x_ND, rule, norm_N, centroids_KD, biases_K, cfg.chunk)


def _check(x_ND: np.ndarray, k: int) -> int:
    if x_ND.ndim != 2:
        raise ConfigError(f"k-means needs a 2-d array of vectors, got shape {x_ND.shape}")
    if k > len(x_ND):
        raise ConfigError(f"--k {k} is larger than the number of vectors ({len(x_ND)}): lower --k or add data")
    return len(x_ND)


def _scores(x_ND, rows: np.ndarray | None, centroids_KD: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosines (m, K) float32 and norms of the given rows (None: all), computed exactly as `assign` does."""
    m = len(x_ND) if rows is None else len(rows)
    scores_NK, norm_N = np.empty((m, len(centroids_KD)), np.float32), np.empty(m, np.float32)
    for s in range(0, m, chunk):
        x_CD = x_ND[s : s + chunk] if rows is None else x_ND[rows[s : s + chunk]]
        scores_NK[s : s + chunk], norm_N[s : s + chunk] = cos_chunk(np.asarray(x_CD, np.float32), centroids_KD)
    return scores_NK, norm_N


def _calibrate(scores_NK: np.ndarray, beta_K: np.ndarray, cfg: KMeansConfig) -> tuple[np.ndarray, Rule]:
    """Biases (squared-distance units) solved on the calibration scores to within CALIBRATE_TOL of n/K
    (1.5 rows when that is less: sizes ceil(n/K) +- 1 stay within max/min 1.03 from ~70 rows a
    cluster), and the rule at exactly those float32 biases."""
    if not cfg.balance:
        return np.zeros(cfg.k, np.float32), evaluate(scores_NK, np.zeros(cfg.k, np.float32))
    tol = max(CALIBRATE_TOL * len(scores_NK) / cfg.k, 1.5)
    beta_K, rule = solve_coarse(scores_NK, beta_K, cfg.bias_steps, tol)
    if rule is None:  # solved on a subsample: finish on all calibration rows
        beta_K, rule = solve_prices(scores_NK, beta_K, cfg.bias_steps, tol)
    return 2 * beta_K, rule  # float32 doubling is exact: score_prices(2 beta) == beta, the rule's prices
