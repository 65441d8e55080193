"""faiss: plain spherical k-means (the baseline the balanced k-means is measured against) and the
GPU index that scores the router's biased rule when a GPU is visible. faiss is imported lazily:
it is heavy, and the CPU assignment path does not need it.
"""

from __future__ import annotations

import numpy as np


def plain_faiss_kmeans(
    x_ND: np.ndarray, k: int, iters: int = 20, seed: int = 0, sample_per_centroid: int = 512
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline: faiss.Kmeans (spherical, same sample size and iterations), then nearest centroid.

    Expects at least k unit rows (`fit_balanced_kmeans` checks the same input first, with the same
    one-line error); returns (centroids_KD, labels_N, dist_N).
    """
    import faiss

    x = np.ascontiguousarray(x_ND, dtype=np.float32)
    km = faiss.Kmeans(
        x.shape[1], k, niter=iters, seed=seed, spherical=True, max_points_per_centroid=sample_per_centroid,
        gpu=gpu_count() > 0,
    )
    km.train(x)
    ip_N1, labels_N1 = km.index.search(x, 1)  # km.index is inner-product when spherical
    labels_N = labels_N1[:, 0].astype(np.int32)
    dist_N = 1.0 + (km.centroids[labels_N] ** 2).sum(1) - 2.0 * ip_N1[:, 0]  # rows are unit vectors
    return km.centroids, labels_N, np.maximum(dist_N, 0).astype(np.float32)


def gpu_biased_index(centroids_KD: np.ndarray, biases_K: np.ndarray):
    """faiss GPU inner-product index over [c, -b/2]: [x, 1].[c, -b/2] = x.c - b/2."""
    import faiss

    aug_KD1 = np.hstack([centroids_KD, -biases_K[:, None] / 2]).astype(np.float32)
    index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(aug_KD1.shape[1]))
    index.add(aug_KD1)
    return index


def gpu_top2(index, x_CD: np.ndarray):
    x_CD1 = np.hstack([x_CD, np.ones((len(x_CD), 1), np.float32)])
    top_C2, idx_C2 = index.search(x_CD1, min(2, index.ntotal))
    return top_C2[:, 0], top_C2[:, -1], idx_C2[:, 0].astype(np.int64)


def gpu_count() -> int:
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
