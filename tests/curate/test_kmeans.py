"""Balanced k-means on small synthetic data: balance, determinism, batch-independent rule, capacity."""

from __future__ import annotations

import numpy as np
import pytest

from splitlm.curate.cluster.faiss_ops import plain_faiss_kmeans
from splitlm.curate.cluster.kmeans import (
    KMeansConfig,
    assign,
    assign_with_capacity,
    balance_stats,
    fit_balanced_kmeans,
)
from splitlm.core.errors import ConfigError


def skewed(n: int = 6000, d: int = 32, components: int = 6, seed: int = 0) -> np.ndarray:
    """Unit vectors from blobs whose weights differ ~60x: plain k-means follows the weights."""
    rng = np.random.default_rng(seed)
    w_C = np.geomspace(1.0, 60.0, components)
    means_CD = rng.standard_normal((components, d))
    comp_N = rng.choice(components, n, p=w_C / w_C.sum())
    x_ND = means_CD[comp_N] / np.sqrt(d) + rng.standard_normal((n, d)) * 0.4 / np.sqrt(d)
    return (x_ND / np.linalg.norm(x_ND, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return skewed()


@pytest.fixture(scope="module")
def model(data):
    return fit_balanced_kmeans(data, KMeansConfig(k=8, iters=10, seed=3))


def test_balances_skewed_data_where_plain_kmeans_does_not(data, model):
    _, plain_N, _ = plain_faiss_kmeans(data, 8, iters=10, seed=3)
    labels_N, dist_N = assign(data, model.centroids_KD, model.biases_K)
    assert balance_stats(plain_N, 8).max_min > 2.0  # the data really is skewed
    stats = balance_stats(labels_N, 8)
    assert stats.max_min <= 1.10
    assert stats.imbalance < 1.01
    assert labels_N.dtype == np.int32 and dist_N.dtype == np.float32
    assert np.allclose(np.linalg.norm(model.centroids_KD, axis=1), 1.0, atol=1e-5)


def test_dist_is_squared_l2_to_own_centroid_without_bias(data, model):
    labels_N, dist_N = assign(data[:500] * 3.0, model.centroids_KD, model.biases_K)  # scale is ignored
    direct_N = ((data[:500] - model.centroids_KD[labels_N]) ** 2).sum(1)
    np.testing.assert_allclose(dist_N, direct_N, atol=1e-5)
    biased_NK = ((data[:500, None, :] - model.centroids_KD[None]) ** 2).sum(-1) + model.biases_K
    assert (labels_N == biased_NK.argmin(1)).mean() > 0.99  # float32 near-ties aside


def test_same_seed_gives_byte_identical_output(data):
    cfg = KMeansConfig(k=8, iters=5, seed=11, sample_per_centroid=300, calibrate_per_centroid=500)
    a, b = fit_balanced_kmeans(data, cfg), fit_balanced_kmeans(data, cfg)
    assert a.centroids_KD.tobytes() == b.centroids_KD.tobytes()
    assert a.biases_K.tobytes() == b.biases_K.tobytes()
    la, da = assign(data, a.centroids_KD, a.biases_K)
    lb, db = assign(data, b.centroids_KD, b.biases_K)
    assert la.tobytes() == lb.tobytes() and da.tobytes() == db.tobytes()
    other = fit_balanced_kmeans(data, KMeansConfig(k=8, iters=5, seed=12, sample_per_centroid=300))
    assert other.centroids_KD.tobytes() != a.centroids_KD.tobytes()


def test_a_vector_alone_gets_its_batch_label(data, model):
    c_KD, b_K = model.centroids_KD, model.biases_K
    # Near-ties: midpoints of two centroids with equal biases.
    ties_TD = c_KD[[0, 2, 5]] + c_KD[[1, 3, 6]]
    tied_b_K = np.zeros_like(b_K)
    x_ND = np.concatenate([data[:300], ties_TD]).astype(np.float32)
    for biases in (b_K, tied_b_K):
        batch_N, _ = assign(x_ND, c_KD, biases)
        chunked_N, _ = assign(x_ND, c_KD, biases, chunk=7)
        alone_N = np.array([assign(x_ND[i : i + 1], c_KD, biases)[0][0] for i in range(len(x_ND))])
        assert (batch_N == alone_N).all() and (batch_N == chunked_N).all()
    axes_KD = np.eye(4, dtype=np.float32)
    tied_ND = np.array([[1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 0, 2]], dtype=np.float32)
    assert list(assign(tied_ND, axes_KD, np.zeros(4, np.float32))[0]) == [0, 1, 3]


@pytest.mark.parametrize("eps", [0.0, 0.05])
def test_capacity_is_respected(data, model, eps):
    zero_b = np.zeros_like(model.biases_K)  # unbiased rule: badly over capacity
    free_N, _ = assign(data, model.centroids_KD, zero_b)
    labels_N, dist_N = assign_with_capacity(data, model.centroids_KD, zero_b, eps)
    cap = int(np.ceil((1 + eps) * len(data) / 8))
    sizes = np.bincount(labels_N, minlength=8)
    assert sizes.max() <= cap and sizes.sum() == len(data)
    kept = np.bincount(free_N, minlength=8) <= cap
    assert (labels_N[kept[free_N]] == free_N[kept[free_N]]).all()  # under-cap clusters keep members
    np.testing.assert_allclose(dist_N, ((data - model.centroids_KD[labels_N]) ** 2).sum(1), atol=1e-5)


def test_k_larger_than_n_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="--k 10 is larger than the number of vectors") as err:
        fit_balanced_kmeans(np.ones((4, 3), np.float32), KMeansConfig(k=10))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [dict(k=0), dict(iters=0), dict(capacity_eps=-0.1), dict(sample_per_centroid=0)])
def test_config_validation(bad):
    with pytest.raises(ConfigError):
        KMeansConfig(**bad)


def test_balance_stats():
    stats = balance_stats(np.array([0, 0, 0, 1]), 2)
    assert list(stats.sizes_K) == [3, 1] and stats.max_min == 3.0 and stats.imbalance == 1.25
    assert balance_stats(np.array([5, 5])).max_min == 1.0
    assert balance_stats(np.array([0, 0]), 3).max_min == float("inf")


def test_unbalanced_mode_and_single_cluster(data):
    plain = fit_balanced_kmeans(data, KMeansConfig(k=8, iters=5, balance=False))
    assert not plain.biases_K.any()
    one = fit_balanced_kmeans(data, KMeansConfig(k=1, iters=2))
    labels_N, _ = assign(data, one.centroids_KD, one.biases_K)
    assert not labels_N.any()
