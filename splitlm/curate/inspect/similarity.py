"""Cluster similarity: centroid cosines, nearest neighbours, and the paper's App. F cluster pairs.

App. F builds two-cluster experiments from one reference cluster: rank every other cluster by the
distance of its centroid to the reference's; the farthest is the "0% similarity" partner, the
median the "50%" one and the closest the "100%" one. Similar pairs favour long pretraining,
dissimilar ones early splitting (paper Sec. 3 and App. F), so these pairs bracket the behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.curate.stats import centroid_cosines, nearest_clusters

LEVELS = ("0%", "50%", "100%")


@dataclass(frozen=True)
class Pair:
    similarity: str  # "0%" (farthest), "50%" (median), "100%" (closest)
    reference: int
    partner: int
    cosine: float


@dataclass(frozen=True, eq=False)
class SimilarityStats:
    cos_KK: np.ndarray  # centroid cosines, float64, 1 on the diagonal
    pairs: list[Pair]

    def neighbours(self, c: int, n: int = 3) -> list[int]:
        return nearest_clusters(self.cos_KK, c, n)


def cluster_similarity(centroids_KD: np.ndarray, reference: int = 0) -> SimilarityStats:
    k = len(centroids_KD)
    if not 0 <= reference < k:
        raise ConfigError(f"--reference {reference}: the run has clusters 0..{k - 1}")
    cos_KK = centroid_cosines(centroids_KD)
    return SimilarityStats(cos_KK, app_f_pairs(cos_KK, reference))


def app_f_pairs(cos_KK: np.ndarray, reference: int) -> list[Pair]:
    """Farthest, median and closest partner of `reference` (empty when K < 2)."""
    others = [j for j in range(len(cos_KK)) if j != reference]
    if not others:
        return []
    by_cos = sorted(others, key=lambda j: (cos_KK[reference, j], j))  # far -> close
    picks = (by_cos[0], by_cos[(len(by_cos) - 1) // 2], by_cos[-1])
    return [Pair(level, reference, j, round(float(cos_KK[reference, j]), 4)) for level, j in zip(LEVELS, picks)]
