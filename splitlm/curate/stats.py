"""Statistics shared by the cards, inspect and the windows stage: one implementation of each rule.

- `ranked_labels` / `majority_label`: the majority-label rule. Labels are ranked by weight
  (tokens or windows), ties by name; unlabelled (None) entries never win.
- `centroid_cosines` / `nearest_clusters`: centroid similarity and each cluster's neighbours.
- `share_by_cluster`: per cluster, the share of hits (routing accuracy) and the sample size.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np


def ranked_labels(weighted: Iterable[tuple[str | None, int]]) -> list[tuple[str, int]]:
    """(label, total weight), heaviest first, ties by label; None labels are left out."""
    mix: Counter[str] = Counter()
    for label, weight in weighted:
        if label is not None:
            mix[label] += weight
    return sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))


def majority_label(weighted: Iterable[tuple[str | None, int]]) -> str | None:
    ranked = ranked_labels(weighted)
    return ranked[0][0] if ranked else None


def centroid_cosines(centroids_KD: np.ndarray) -> np.ndarray:
    """[K, K] float64 cosines between centroids, exactly 1 on the diagonal."""
    c_KD = centroids_KD.astype(np.float64)
    c_KD = c_KD / np.maximum(np.linalg.norm(c_KD, axis=1, keepdims=True), 1e-12)
    cos_KK = np.clip(c_KD @ c_KD.T, -1.0, 1.0)
    np.fill_diagonal(cos_KK, 1.0)
    return cos_KK


def nearest_clusters(cos_KK: np.ndarray, c: int, n: int = 3) -> list[int]:
    order = np.argsort(-cos_KK[c], kind="stable")
    return [int(j) for j in order if j != c][:n]


def share_by_cluster(hits_S: np.ndarray, own_S: np.ndarray, k: int) -> list[tuple[float | None, int]]:
    """Per cluster: (share of its sampled windows that are hits, rounded to 4 digits, or None; sample size)."""
    out = []
    for c in range(k):
        mine = hits_S[own_S == c]
        out.append((round(float(mine.mean()), 4) if len(mine) else None, int(len(mine))))
    return out
