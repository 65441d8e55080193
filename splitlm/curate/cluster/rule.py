"""The balanced rule at given prices, evaluated on a score matrix: best and second-best cluster per row.

label = argmax_c s_c - beta_c (float32 arithmetic, lowest index wins ties) with beta_c = b_c / 2 computed
exactly as the router does, so fit, calibration and routing agree bit for bit on the same scores.
Row blocks run on every core (`splitlm.core.threads`): each row's outcome is its own, so the bytes
do not depend on the number of threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from splitlm.core.threads import over_spans

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

    def span(lo: int, hi: int) -> None:  # one thread's rows, a cache-sized block at a time
        buf = np.empty((min(CHUNK, hi - lo), k), np.float32)
        for s in range(lo, hi, CHUNK):
            a = np.subtract(scores_NK[s : min(s + CHUNK, hi)], b32, out=buf[: min(CHUNK, hi - s)])
            part = slice(s, s + len(a))
            labels[part], top[part], second[part], gap[part] = top2_rows(a)

    over_spans(span, n, 4 * CHUNK)
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




def reevaluate(scores_NK: np.ndarray, beta_K: np.ndarray, old: Rule, old_beta_K: np.ndarray) -> Rule:
    """`evaluate` at new prices from the rule at old ones, re-scoring only rows whose label can change.

    With d = new - old prices, row i keeps its label unless gap_i < d[label_i] - min(d): its best
    score fell by d[label_i], no other rose by more than -min(d). Kept rows get their exact new best
    score and a lower bound on their gap (old gap minus that threat); the runner-up is left as it was.
    So labels, sizes and dual are exact, and gaps are lower bounds (exact after a full evaluation).
    """
    n, k = scores_NK.shape
    b32 = np.asarray(beta_K, dtype=np.float32)
    d_K = b32.astype(np.float64) - np.asarray(old_beta_K, dtype=np.float32).astype(np.float64)
    threat_N = (d_K[old.labels] - d_K.min() + 1e-6).astype(np.float32)  # 1e-6: float32 rounding of s - b
    risky = np.flatnonzero(old.gap <= threat_N)
    if len(risky) > n // 3:
        return evaluate(scores_NK, beta_K)
    labels, second = old.labels.copy(), old.second.copy()
    top = scores_NK[np.arange(n), labels] - b32[labels]
    gap = np.maximum(old.gap - threat_N, 0)

    def span(lo: int, hi: int) -> None:
        for s in range(lo, hi, CHUNK):
            rows = risky[s : min(s + CHUNK, hi)]
            labels[rows], top[rows], second[rows], gap[rows] = top2_rows(scores_NK[rows] - b32)

    over_spans(span, len(risky), 4 * CHUNK)
    dual = float(top.sum(dtype=np.float64) + n / k * b32.sum(dtype=np.float64))
    return Rule(labels, second, top, gap, np.bincount(labels, minlength=k), dual)
