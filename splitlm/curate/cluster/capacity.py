"""A hard cap ceil((1+eps) N/K) on cluster sizes: spill the members that lose least to a cluster with room.

Over-full clusters keep their members with the largest regret (best minus second-best biased score);
the rest, those who lose most choosing first, go to their best cluster that still has room (exact
float64 scores, so the outcome does not depend on batching).
"""

from __future__ import annotations

import math

import numpy as np

from splitlm.curate.cluster.scoring import exact_cos_pairs


def spill_to_capacity(x_ND, labels_N, dist_N, regret_N, centroids_KD, biases_K, eps: float):
    """labels_N, dist_N (updated in place and returned) with no cluster above ceil((1+eps) N/K)."""
    k = len(centroids_KD)
    cap = math.ceil((1 + eps) * len(labels_N) / k)
    evicted = []
    for c in np.flatnonzero(np.bincount(labels_N, minlength=k) > cap):
        members = np.flatnonzero(labels_N == c)
        by_regret = members[np.argsort(regret_N[members], kind="stable")]
        evicted.append(by_regret[: len(members) - cap])  # those who lose least by moving
    if not evicted:
        return labels_N, dist_N
    spill_E = np.concatenate(evicted)
    spill_E = spill_E[np.argsort(-regret_N[spill_E], kind="stable")]  # who loses most chooses first
    room_K = cap - np.bincount(np.delete(labels_N, spill_E), minlength=k)
    e = len(spill_E)
    rows, cols = np.repeat(np.arange(e), k), np.tile(np.arange(k), e)
    cos_EK = exact_cos_pairs(np.asarray(x_ND[spill_E], np.float32), centroids_KD, rows, cols).reshape(e, k)
    biased_EK = cos_EK - biases_K.astype(np.float64) / 2
    pending = np.arange(e)
    while len(pending):  # each round fills at least one cluster or places everyone
        choice = np.argmax(np.where(room_K > 0, biased_EK[pending], -np.inf), axis=1)
        order = np.argsort(choice, kind="stable")
        first = np.searchsorted(choice[order], np.arange(k))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order)) - first[choice[order]]
        ok = rank < room_K[choice]
        labels_N[spill_E[pending[ok]]] = choice[ok]
        room_K -= np.bincount(choice[ok], minlength=k)
        pending = pending[~ok]
    labels_E = labels_N[spill_E]
    sq_c = (centroids_KD.astype(np.float64) ** 2).sum(1)
    dist_N[spill_E] = np.maximum(1.0 + sq_c[labels_E] - 2.0 * cos_EK[np.arange(e), labels_E], 0)
    return labels_N, dist_N
