"""The balanced rule at given prices, evaluated on a score matrix: best and second-best cluster per row.

label = argmax_c s_c - beta_c (float32 arithmetic, lowest index wins ties) with beta_c = b_c / 2 computed
exactly as the router does, so fit, calibration and routing agree bit for bit on the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 4096  # rows per block when scanning scores: a block of biased scores stays in cache


@dataclass(frozen=True, eq=False)
class Rule:
    """The argmax rule's outcome at some prices: per row best / second-best cluster, gap between them."""

    labels: np.ndarray  # int64
    second: np.ndarray  # int64 (== labels when K == 1)
    top: np.ndarray  # float32 best biased score
    gap: np.ndarray  # float32 best minus second-best biased score (inf when K == 1)
    sizes: np.ndarray  # int64 per cluster
    dual: float  # g(beta)


def score_prices(biases_K: np.ndarray) -> np.ndarray:
    """beta = b / 2 exactly as the rule computes it (float32), so fit, calibration and router agree."""
    return biases_K.astype(np.float32) / np.float32(2)


def evaluate(scores_NK: np.ndarray, beta_K: np.ndarray) -> Rule:
    """Labels etc. of argmax_c scores - beta (float32 arithmetic, lowest index wins ties), by row blocks."""
    n, k = scores_NK.shape
    b32 = np.asarray(beta_K, dtype=np.float32)
    labels, second = np.empty(n, np.int64), np.empty(n, np.int64)
    top, gap = np.empty(n, np.float32), np.empty(n, np.float32)
    buf = np.empty((min(CHUNK, n), k), np.float32)
    for s in range(0, n, CHUNK):
        a = np.subtract(scores_NK[s : s + CHUNK], b32, out=buf[: min(CHUNK, n - s)])
        part = slice(s, s + len(a))
        labels[part], top[part], second[part], gap[part] = top2_rows(a)
    sizes = np.bincount(labels, minlength=k)
    dual = float(top.sum(dtype=np.float64) + n / k * b32.sum(dtype=np.float64))
    return Rule(labels, second, top, gap, sizes, dual)


def top2_rows(a_CK: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best index, best value, second index, best minus second value per row (a_CK is scratch)."""
    r = np.arange(len(a_CK))
    lab = a_CK.argmax(1)
    top = a_CK[r, lab]
    if a_CK.shape[1] == 1:
        return lab, top, lab, np.full(len(a_CK), np.inf, np.float32)
    a_CK[r, lab] = -np.inf
    sec = a_CK.argmax(1)
    return lab, top, sec, top - a_CK[r, sec]


