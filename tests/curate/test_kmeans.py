"""Balanced k-means on small synthetic data: balance (bar max/min <= 1.05, against a real faiss baseline),
determinism, the batch-independent rule, fit_and_assign == assign, capacity, the price solver."""

from __future__ import annotations

import numpy as np
import pytest

from splitlm.core.errors import ConfigError
from splitlm.curate.cluster.faiss_ops import plain_faiss_kmeans
from splitlm.curate.cluster.kmeans import (
    KMeansConfig,
    assign,
    assign_with_capacity,
    balance_stats,
    fit_and_assign,
    fit_balanced_kmeans,
)
from splitlm.curate.cluster import shifts
from splitlm.curate.cluster.prices import solve_coarse, solve_prices
from splitlm.curate.cluster.rule import evaluate
from splitlm.curate.cluster.scoring import TIE_MARGIN, exact_rule


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
    assert stats.max_min <= 1.05
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


@pytest.mark.parametrize("bad", [{"k": 0}, {"iters": 0}, {"capacity_eps": -0.1}, {"sample_per_centroid": 0}])
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


def test_fit_and_assign_gives_assigns_labels_balanced(data):
    _, _, plain_dist_N = plain_faiss_kmeans(data, 8, iters=10, seed=3)
    for calibrate in (4096, 300):  # all rows calibrate and label in one pass; a 2,400-row sample, then assign
        cfg = KMeansConfig(k=8, iters=10, seed=3, calibrate_per_centroid=calibrate)
        model, labels_N, dist_N = fit_and_assign(data, cfg)
        again_N, again_dist_N = assign(data, model.centroids_KD, model.biases_K)
        assert labels_N.tobytes() == again_N.tobytes()
        np.testing.assert_allclose(dist_N, again_dist_N, atol=1e-5)
        assert model.n_calibrate == min(len(data), 8 * calibrate) and model.max_min <= 1.05
        if calibrate == 4096:  # all rows calibrated; from a 300-per-cluster sample sizes wander ~5%
            assert balance_stats(labels_N, 8).max_min <= 1.05
        assert dist_N.mean() < 2 * plain_dist_N.mean()  # 60x skewed blobs: balance costs ~1.5x here, not more
    capped = fit_and_assign(data, KMeansConfig(k=8, iters=10, seed=3, capacity_eps=0.0))[1]
    assert np.bincount(capped, minlength=8).max() <= int(np.ceil(len(data) / 8))


def test_fit_and_assign_same_seed_byte_identical(data):
    cfg = KMeansConfig(k=8, iters=5, seed=11)
    (a, la, da), (b, lb, db) = fit_and_assign(data, cfg), fit_and_assign(data, cfg)
    assert a.centroids_KD.tobytes() == b.centroids_KD.tobytes() and a.biases_K.tobytes() == b.biases_K.tobytes()
    assert la.tobytes() == lb.tobytes() and da.tobytes() == db.tobytes()


def test_far_small_modes_are_balanced_by_exact_shifts():
    """A dense mode split many ways plus far modes of unequal, non-multiple masses: balance needs big price
    moves between modes (which a local Newton model cannot see) and fine ones inside the dense mode."""
    rng = np.random.default_rng(5)
    d, sizes = 24, [2600, 700, 450, 180, 70]  # K=8: 650 rows each; the small modes must merge or split
    means = rng.standard_normal((len(sizes), d))
    x = np.concatenate([m + rng.standard_normal((s, d)) * 0.15 for m, s in zip(means, sizes)])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    _, plain_N, _ = plain_faiss_kmeans(x, 8, iters=10, seed=0)
    model, labels_N, _ = fit_and_assign(x, KMeansConfig(k=8, iters=10))
    assert balance_stats(plain_N, 8).max_min > 3 and balance_stats(labels_N, 8).max_min <= 1.05
    scores_NK = x @ model.centroids_KD.T
    beta_K, rule = solve_prices(scores_NK, np.zeros(8, np.float32), 40, 2.0)  # cold start: all the way
    assert np.abs(rule.sizes - len(x) / 8).max() <= 2.0
    assert (rule.labels == evaluate(scores_NK, beta_K).labels).all()


@pytest.mark.parametrize("w", [1, 7, 40, 299, 1500, 3999])
def test_shift_selection_equals_a_full_partition(w):
    """The thresholded selection of the w-th and (w+1)-th largest margins gives the full partition's values
    (with ties, and when the subsample's threshold lets too few rows through)."""
    rng = np.random.default_rng(w)
    margin_N = np.round(rng.standard_normal(4000), 2).astype(np.float32)  # many ties
    part = np.partition(margin_N, (4000 - w - 1, 4000 - w))
    assert shifts._ranked(margin_N, w) == (part[4000 - w], part[4000 - w - 1])


def test_transposed_column_reads_give_the_same_prices(data, model, monkeypatch):
    """Shifts reading a transposed copy of the scores move the prices exactly as strided reads do."""
    scores_NK = data @ model.centroids_KD.T
    start_K = np.zeros(8, np.float32)
    strided = solve_prices(scores_NK, start_K, 10, 1.5)[0]
    monkeypatch.setattr(shifts, "TRANSPOSE_AFTER", 0)
    transposed = solve_prices(scores_NK, start_K, 10, 1.5)[0]
    assert strided.tobytes() == transposed.tobytes()


def test_coarse_solve_warm_starts_the_full_one(data, model):
    """On every stride-th row: sizes on all rows near n/K (the subsample's noise), then a few full steps."""
    scores_NK = data @ model.centroids_KD.T  # 6000 rows, K=8: stride 3 at 256 rows a cluster
    beta_K, rule = solve_coarse(scores_NK, np.zeros(8, np.float32), 30, 1.5, rows=256)
    assert rule is None
    sizes_K = evaluate(scores_NK, beta_K).sizes
    assert np.abs(sizes_K - 750).max() <= 0.15 * 750
    beta_K, rule = solve_prices(scores_NK, beta_K, 30, 1.5)
    assert np.abs(rule.sizes - 750).max() <= 1.5
    assert solve_coarse(scores_NK, np.zeros(8, np.float32), 30, 1.5, rows=512)[1] is not None  # stride 1


def test_exact_rule_matches_brute_force_float64(data, model):
    c_KD, b_K = model.centroids_KD, model.biases_K
    x_mD = np.concatenate([data[:50], c_KD[[0, 2]] + c_KD[[1, 3]]]).astype(np.float32)
    x64 = x_mD.astype(np.float64) / np.linalg.norm(x_mD.astype(np.float64), axis=1, keepdims=True)
    biased = x64 @ c_KD.T.astype(np.float64) - b_K.astype(np.float64) / 2
    labels, cos, regret = exact_rule(x_mD, c_KD, b_K)
    assert (labels == biased.argmax(1)).all()
    np.testing.assert_allclose(cos, (x64 @ c_KD.T.astype(np.float64))[np.arange(len(x_mD)), labels], atol=1e-12)
    top2 = np.sort(biased, axis=1)[:, -2:]
    close = top2[:, 1] - top2[:, 0] < TIE_MARGIN
    np.testing.assert_allclose(regret[close], (top2[:, 1] - top2[:, 0])[close], atol=1e-12)


@pytest.mark.parametrize("balance", [True, False])
def test_many_empty_clusters_are_reseeded(balance):
    """5 distinct vectors, 40 copies each, K=16: most clusters start empty (the old reseed crashed)."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 12)).astype(np.float32)
    x = np.repeat(base / np.linalg.norm(base, axis=1, keepdims=True), 40, axis=0)
    model, labels_N, _ = fit_and_assign(x, KMeansConfig(k=16, iters=4, balance=balance))
    assert model.centroids_KD.shape == (16, 12) and labels_N.min() >= 0 and labels_N.max() < 16
    assert np.isfinite(model.biases_K).all()
