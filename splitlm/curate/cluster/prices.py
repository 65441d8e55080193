"""Dual prices for balanced k-means: per-cluster biases under which every cluster gets ~n/K rows.

label(x) = argmax_c s_c(x) - beta_c with s the cosine to centroid c and beta_c = b_c / 2 (b in
squared-distance units, as stored in the router). Each step moves every price to the quantile of
its margins that would give its cluster exactly n/K rows if the others stood still.
"""

from __future__ import annotations

import math

import numpy as np


def solve_biases(scores_KS: np.ndarray, biases_K: np.ndarray, steps: int, tol: float) -> np.ndarray:
    """Biases (squared-distance units) under which each cluster gets ~n/K of the n scored rows.

    Works in score units (beta = b/2: label = argmax_c s_c - beta_c). g_ci = margin by which row i
    prefers c over its best other option; moving beta_c to the right quantile of g_c: would give c
    exactly n/K rows if the others stood still. All clusters move at once, each by its own step
    size, halved when its size error flips sign: twin centroids would otherwise swap rows forever.
    """
    k, n = scores_KS.shape
    if k == 1:
        return np.zeros(1, dtype=np.float32)
    want = max(1, round(n / k))
    beta_K = biases_K.astype(np.float64) / 2
    step_K, last_err_K = np.full(k, 0.5), np.zeros(k)
    best = (math.inf, beta_K.copy())  # steps can overshoot: return the best biases seen
    for _ in range(steps):
        adj_KS = scores_KS - beta_K[:, None].astype(np.float32)
        top1_S, top2_S, labels_S = top2(adj_KS)
        err_K = np.bincount(labels_S, minlength=k) - n / k
        if np.abs(err_K).max() < best[0]:
            best = (np.abs(err_K).max(), beta_K.copy())
        if best[0] <= max(tol * n / k, 1.0):  # sizes are integers
            break
        flipped = np.sign(err_K) * np.sign(last_err_K) < 0
        step_K = np.where(flipped, step_K / 2, np.minimum(step_K * 1.5, 1.0))
        members = np.split(np.argsort(labels_S, kind="stable"), np.cumsum(np.bincount(labels_S, minlength=k))[:-1])
        # Rows an over-full cluster sheds must land in a cluster with room: other over-full ones are
        # raising their prices too (a group of near-twins would pass rows around for ever).
        room_S = adj_KS[err_K <= 0].max(0)
        shift_K = np.empty(k)
        for c in range(k):
            gap_S = adj_KS[c] - top1_S
            mine = members[c]
            gap_S[mine] = top1_S[mine] - (room_S[mine] if err_K[c] > 0 else top2_S[mine])
            shift_K[c] = _split_point(gap_S, want)
        beta_K += step_K * shift_K
        beta_K -= beta_K.mean()
        last_err_K = err_K
    return (2 * best[1]).astype(np.float32)


def top2(adj_KS: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best and second-best value and best index per column; ties go to the lowest index."""
    top1_S = adj_KS[0].copy()
    top2_S = np.full_like(top1_S, -np.inf)
    labels_S = np.zeros(adj_KS.shape[1], dtype=np.int64)
    for c in range(1, len(adj_KS)):  # row by row: contiguous, no (K, n) temporaries
        row_S = adj_KS[c]
        np.maximum(top2_S, np.minimum(row_S, top1_S), out=top2_S)
        labels_S[row_S > top1_S] = c
        np.maximum(top1_S, row_S, out=top1_S)
    return top1_S, top2_S, labels_S


def _split_point(gap_S: np.ndarray, want: int) -> float:
    """A value with exactly `want` gaps above it (midway between the want-th and want+1-th largest).

    Only the top of the distribution matters, so it partitions the gaps above a threshold that widens
    until it holds enough of them, rather than all n.
    """
    width = 0.05
    while True:
        top = gap_S[gap_S > -width]
        if len(top) > want or len(top) == len(gap_S):
            break
        width *= 4
    m = len(top)
    if m <= want:
        return float(top.min()) - 1e-6
    part = np.partition(top, (m - want - 1, m - want))
    return float(part[m - want - 1] + part[m - want]) / 2
