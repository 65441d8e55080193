"""Turning a router's scores into probabilities it can be held to, and measuring whether it is.

A router ranks the K clusters for a prefix by a score where lower is better (the centroid rule's
biased squared distance `||x - c||^2 + b_c`). Probabilities come from a softmax over the negated
scores divided by one temperature T:

    p_k = exp(-s_k / T) / sum_j exp(-s_j / T)

T is fitted by maximum likelihood on labelled prefixes (the cluster each training window was
assigned to), so that a 0.8 means right about 80% of the time on windows like those. One scalar
cannot change which cluster ranks first, so calibration never changes a route. The fit is a
golden-section search on log T over a bracket wide enough for any unit-vector score (the negative
log-likelihood is convex in 1/T, hence unimodal in log T); it is deterministic and costs
~60 passes over an [N, K] array.

Expected calibration error (ECE): the top probability of each prefix falls in one of `bins` equal
bins over [0, 1]; ECE is the share-weighted mean |accuracy - mean confidence| over the bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOG_T_RANGE = (-12.0, 4.0)
"""log T bracket: squared distances between unit vectors lie in [0, 4], so T beyond e^4 is flat."""
GOLDEN_STEPS = 60


def probabilities(scores_NK: np.ndarray, temperature: float) -> np.ndarray:
    """[N, K] softmax of -scores / T, float64, rows summing to 1."""
    z_NK = -np.asarray(scores_NK, dtype=np.float64) / temperature
    z_NK -= z_NK.max(axis=1, keepdims=True)
    p_NK = np.exp(z_NK)
    return p_NK / p_NK.sum(axis=1, keepdims=True)


def nll(scores_NK: np.ndarray, labels_N: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of `labels_N` under `probabilities(scores_NK, temperature)`."""
    z_NK = -np.asarray(scores_NK, dtype=np.float64) / temperature
    top_N = z_NK.max(axis=1)
    log_norm_N = top_N + np.log(np.exp(z_NK - top_N[:, None]).sum(axis=1))
    return float(np.mean(log_norm_N - z_NK[np.arange(len(labels_N)), labels_N]))


def fit_temperature(scores_NK: np.ndarray, labels_N: np.ndarray) -> float:
    """The T that minimises the NLL of the labels; 1.0 when there is nothing to fit on."""
    labels_N = np.asarray(labels_N, dtype=np.int64)
    if len(labels_N) == 0:
        return 1.0
    lo, hi = LOG_T_RANGE
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(scores_NK, labels_N, np.exp(a)), nll(scores_NK, labels_N, np.exp(b))
    for _ in range(GOLDEN_STEPS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(scores_NK, labels_N, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(scores_NK, labels_N, np.exp(b))
    return float(np.exp((lo + hi) / 2.0))


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin: how many prefixes, their mean top probability, and how many were right."""

    edges: np.ndarray  # [bins + 1]
    count_B: np.ndarray  # int64
    confidence_B: np.ndarray  # mean top probability (nan in an empty bin)
    accuracy_B: np.ndarray  # share right (nan in an empty bin)

    @property
    def ece(self) -> float:
        n = int(self.count_B.sum())
        if n == 0:
            return float("nan")
        gap_B = np.abs(np.nan_to_num(self.accuracy_B) - np.nan_to_num(self.confidence_B))
        return float((self.count_B * gap_B).sum() / n)


def reliability(confidence_N: np.ndarray, correct_N: np.ndarray, bins: int = 10) -> Reliability:
    """Bin prefixes by their top probability (bin b holds (b/bins, (b+1)/bins], 0 goes to the first)."""
    confidence_N = np.asarray(confidence_N, dtype=np.float64)
    correct_N = np.asarray(correct_N, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    bin_N = np.clip(np.ceil(confidence_N * bins).astype(np.int64) - 1, 0, bins - 1)
    count_B = np.bincount(bin_N, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence_B = np.bincount(bin_N, weights=confidence_N, minlength=bins) / count_B
        accuracy_B = np.bincount(bin_N, weights=correct_N.astype(np.float64), minlength=bins) / count_B
    return Reliability(edges, count_B, confidence_B, accuracy_B)


def expected_calibration_error(confidence_N: np.ndarray, correct_N: np.ndarray, bins: int = 10) -> float:
    return reliability(confidence_N, correct_N, bins).ece
