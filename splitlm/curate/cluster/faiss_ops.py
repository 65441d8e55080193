"""faiss: plain spherical k-means (the baseline the balanced k-means is measured against) and the
GPU index that scores the router's biased rule when a GPU is visible. faiss is imported lazily:
it is heavy, and the CPU assignment path does not need it.
"""

from __future__ import annotations

import numpy as np


def plain_faiss_kmeans(
    x_ND, k: int, iters: int = 20, seed: int = 0, sample_per_centroid: int = 512, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline: faiss.Kmeans (spherical) for `iters` iterations on a seeded sample of k *
    sample_per_centroid rows (the size `fit_balanced_kmeans` fits on), then every row's nearest centroid.

    x_ND is any array-like of rows (a np.memmap is fine): only the sample is read at once, the labels
    are computed in chunks of rows. Rows are normalised. Expects at least k rows (`fit_balanced_kmeans`
    checks the same input first, with the same one-line error); returns (centroids_KD, labels_N, dist_N).
    """
    import faiss

    n = len(x_ND)
    m = min(n, k * sample_per_centroid)
    rows = np.arange(n) if m >= n else np.sort(np.random.default_rng(seed).choice(n, m, replace=False))
    sample_SD = _unit(np.asarray(x_ND[rows], dtype=np.float32))
    km = faiss.Kmeans(
        sample_SD.shape[1], k, niter=iters, seed=seed, spherical=True, max_points_per_centroid=sample_per_centroid,
        gpu=gpu_count() > 0,
    )
    km.train(sample_SD)
    del sample_SD
    labels_N, dist_N = np.empty(n, np.int32), np.empty(n, np.float32)
    sq_K = (km.centroids.astype(np.float64) ** 2).sum(1)
    for s in range(0, n, chunk):
        x_CD = _unit(np.asarray(x_ND[s : s + chunk], dtype=np.float32))
        ip_C1, labels_C1 = km.index.search(x_CD, 1)  # km.index is inner-product when spherical
        labels_N[s : s + len(x_CD)] = labels_C1[:, 0]
        dist_N[s : s + len(x_CD)] = np.maximum(1.0 + sq_K[labels_C1[:, 0]] - 2.0 * ip_C1[:, 0], 0)
    return km.centroids, labels_N, dist_N


def _unit(x_ND: np.ndarray) -> np.ndarray:
    norms_N1 = np.sqrt(np.einsum("nd,nd->n", x_ND, x_ND))[:, None]
    return np.ascontiguousarray(x_ND / np.maximum(norms_N1, 1e-12), dtype=np.float32)


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
