"""Scoring rows against centroids: cosines by BLAS in row chunks, and the exact rule for near-ties.

The biased rule label(x) = argmax_c cos(x, c_c) - b_c / 2 is computed in float32 (one GEMM per chunk).
Rows whose two best biased scores are closer than TIE_MARGIN are re-scored exactly (float64, no BLAS,
per row): float32 GEMM error here is < 3e-5, so a vector gets the same label alone or in any batch.
"""

from __future__ import annotations

import numpy as np

from splitlm.core.threads import over_spans
from splitlm.curate.cluster.faiss_ops import gpu_biased_index, gpu_count, gpu_top2
from splitlm.curate.cluster.rule import Rule, score_prices, top2_rows

# Rows whose two best biased scores are closer than this are re-scored exactly.
TIE_MARGIN = 1e-4
PAIR_BLOCK = 4096  # (row, cluster) pairs per float64 block in the exact rule
SPAN_ROWS = 8192  # rows per thread at least in the row-parallel passes (`splitlm.core.threads`)


def cos_chunk(x_CD: np.ndarray, centroids_KD: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosines (C, K) float32 of raw rows to unit centroids, and the rows' norms (C,) float32.

    One GEMM on the raw rows, then the (C, K) scores are divided by the norms: cheaper than copying
    the rows normalised when K < D.
    """
    x_CD = np.asarray(x_CD, dtype=np.float32)
    cos_CK = x_CD @ centroids_KD.T  # BLAS: every core already
    norm_C = np.empty(len(x_CD), np.float32)

    def span(lo: int, hi: int) -> None:  # row by row: the same bytes in any span
        norm_C[lo:hi] = np.sqrt(np.einsum("nd,nd->n", x_CD[lo:hi], x_CD[lo:hi]))
        cos_CK[lo:hi] /= np.maximum(norm_C[lo:hi], 1e-12)[:, None]

    over_spans(span, len(x_CD), SPAN_ROWS)
    return cos_CK, norm_C


def exact_rule(x_mD: np.ndarray, centroids_KD: np.ndarray, biases_K: np.ndarray):
    """Batch-independent rule for near-ties: label, exact cosine to it, exact regret (best - second).

    Only clusters within TIE_MARGIN of a row's best float32 score can be its exact best (float32 error
    is < TIE_MARGIN / 2), so those (row, cluster) pairs are scored in float64 from elementwise products
    and per-pair sums (no BLAS: nothing depends on the batch); lowest index wins exact ties.
    """
    m, k = len(x_mD), len(centroids_KD)
    cos_mK, _ = cos_chunk(x_mD, centroids_KD)
    a_mK = cos_mK - biases_K.astype(np.float32) / 2
    rows, cols = np.nonzero(a_mK >= a_mK.max(1, keepdims=True) - TIE_MARGIN)
    cos_P = exact_cos_pairs(x_mD, centroids_KD, rows, cols)
    biased_P = cos_P - biases_K.astype(np.float64)[cols] / 2
    starts = np.searchsorted(rows, np.arange(m))
    best_m = np.maximum.reduceat(biased_P, starts)
    first_P = np.where(biased_P == best_m[rows], np.arange(len(rows)), len(rows))
    win_m = np.minimum.reduceat(first_P, starts)  # the winning pair: lowest cluster among equals
    if k == 1:
        return cols[win_m], cos_P[win_m], np.full(m, np.inf)
    rest_P = biased_P.copy()
    rest_P[win_m] = -np.inf
    regret_m = best_m - np.maximum.reduceat(rest_P, starts)
    lone = ~np.isfinite(regret_m)  # its runner-up fell outside the window: the float32 gap will do
    if lone.any():
        top_m2 = np.partition(a_mK[lone], k - 2, axis=1)[:, -2:]
        regret_m[lone] = top_m2[:, 1] - top_m2[:, 0]
    return cols[win_m], cos_P[win_m], regret_m


def exact_cos_pairs(x_mD: np.ndarray, centroids_KD: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float64 cosine of row rows[p] (normalised here) to centroid cols[p], per pair, in blocks."""
    c_KD = centroids_KD.astype(np.float64)
    x_mD = x_mD.astype(np.float64)
    x_mD /= np.maximum(np.sqrt((x_mD * x_mD).sum(1, keepdims=True)), 1e-12)
    out_P = np.empty(len(rows))

    def span(lo: int, hi: int) -> None:
        for s in range(lo, hi, PAIR_BLOCK):
            e = min(s + PAIR_BLOCK, hi)
            out_P[s:e] = (x_mD[rows[s:e]] * c_KD[cols[s:e]]).sum(1)

    over_spans(span, len(rows), 2 * PAIR_BLOCK)
    return out_P


def assign_top2(x_ND, centroids_KD: np.ndarray, biases_K: np.ndarray, chunk: int):
    """Labels (int32), squared distances (float32) and regrets (best minus second-best biased score)
    of every row under the rule, streamed in chunks of rows."""
    n = len(x_ND)
    half_b = score_prices(biases_K)
    gpu_index = gpu_biased_index(centroids_KD, biases_K) if gpu_count() > 0 else None
    labels_N, dist_N, regret_N = np.empty(n, np.int32), np.empty(n, np.float32), np.empty(n, np.float32)
    for s in range(0, n, chunk):
        x_CD = np.asarray(x_ND[s : s + chunk], dtype=np.float32)
        if gpu_index is not None:
            norm_C = np.sqrt(np.einsum("nd,nd->n", x_CD, x_CD))
            top_C, second_C, label_C = gpu_top2(gpu_index, x_CD / np.maximum(norm_C, 1e-12)[:, None])
            gap_C = top_C - second_C
        else:  # one GEMM; the (C, K) scores become biased scores in place
            cos_CK, norm_C = cos_chunk(x_CD, centroids_KD)
            label_C, top_C, _, gap_C = top2_rows(np.subtract(cos_CK, half_b, out=cos_CK))
        part = slice(s, s + len(x_CD))
        labels_N[part], dist_N[part], regret_N[part] = settle(
            label_C, top_C, gap_C, norm_C, x_CD.__getitem__, centroids_KD, biases_K, chunk)
    return labels_N, dist_N, regret_N


def settle(label_C, top_C, gap_C, norm_C, rows_of, centroids_KD, biases_K, chunk: int):
    """Near-ties (rows_of(idx) gives their vectors) re-scored exactly; labels (int32), squared distances
    to the label's centroid without bias (float32), regrets (float32)."""
    half_b = score_prices(biases_K)
    label_C = label_C.astype(np.int32)
    cos_C = (top_C + half_b[label_C]).astype(np.float64)
    gap_C = gap_C.astype(np.float32) if len(centroids_KD) > 1 else np.full(len(label_C), np.inf, np.float32)
    close = np.flatnonzero(gap_C < TIE_MARGIN)
    for s in range(0, len(close), chunk):
        idx = close[s : s + chunk]
        label_C[idx], cos_C[idx], gap_C[idx] = exact_rule(rows_of(idx), centroids_KD, biases_K)
    sq_c = (centroids_KD.astype(np.float64) ** 2).sum(1)
    return label_C, np.maximum((norm_C > 0) + sq_c[label_C] - 2.0 * cos_C, 0).astype(np.float32), gap_C


def labels_from_rule(x_ND, rule: Rule, norm_N: np.ndarray, centroids_KD, biases_K, chunk: int):
    """`assign_top2`'s output from the rule already evaluated on every row's cosines (same numbers)."""
    return settle(rule.labels, rule.top, rule.gap, norm_N, lambda idx: np.asarray(x_ND[idx], dtype=np.float32),
                  centroids_KD, biases_K, chunk)
